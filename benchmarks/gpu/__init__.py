"""The full-size path: SD 1.5 InstructPix2Pix architecture with random weights (``sd15``), built offline,
and the one-command GPU check (``python -m ix2x.benchmarks.gpu.check``, ``make gpu-check``)."""
