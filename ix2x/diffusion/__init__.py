"""The diffusion core: the InstructPix2Pix denoising loop with Region-Specific Editing (``loop``,
``rse``), model loading and conversion (``loading``, ``convert``), editors' shared base (``editor``),
what would stop a model folder from running (``checks``, with ``memory``'s estimate: no torch, no
weights read) and tiny random models for tests (``tiny``)."""
