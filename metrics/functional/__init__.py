"""The math of the perceptual metrics as pure functions on tensors (as torchmetrics'
``functional/image``): :mod:`.ssim` (per-pixel SSIM maps) and :mod:`.lpips` (LPIPS distances from a
given network). They know no :class:`~ix2x.types.Metric`, sample or run: the metric classes
(``out_of_mask_change``, ``gt_fidelity``, ``lpips``) choose what to compare and pass the run's
models and caches in.
"""
