"""The diffusion core: the InstructPix2Pix denoising loop with Region-Specific Editing (``loop``,
``rse``), model loading and conversion (``loading``, ``convert``), editors' shared base (``editor``) and
tiny random models for tests (``tiny``). Importing this package imports torch, not diffusers."""
