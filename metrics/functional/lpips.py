"""LPIPS distances (Zhang et al. 2018) from a given ``lpips.LPIPS`` network: the arithmetic of
``lpips.LPIPS.forward`` (tests compare the two), with each image's backbone features taken from a
cache, so an image several metrics compare (the input, the edit, the true target) goes through the
backbone once per run.

The network itself (backbone weights, never downloaded) and the run's feature cache come from
:mod:`ix2x.classifiers.lpips_net`: a run builds them once in its
:class:`~ix2x.classifiers.scoring.Scoring` and the metrics pass them in.
"""

from __future__ import annotations

import torch

from ix2x import resize
from ix2x.classifiers.base import fixed_chunks
from ix2x.classifiers.lpips_net import FEATURE_CACHE_BYTES, TensorLRU
from ix2x.images import content_key

MIN_SIZE = 64  # AlexNet's strides leave nothing of smaller images: smaller inputs are upsampled


@torch.no_grad()
def lpips_distance(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, *,
                   spatial: bool = False, cache: TensorLRU | None = None) -> torch.Tensor:
    """LPIPS between ``(B, 1, H, W)`` images in [0, 1]: ``(B,)``, or a ``(B, 1, H, W)`` map
    (each layer's distance upsampled to the image) when ``spatial``.

    The arithmetic of ``lpips.LPIPS.forward`` (a test compares the two), but the backbone features
    of each image come from :func:`lpips_features`, so with a run's ``cache`` an image several
    metrics compare (the input, the edit, the true target) goes through the backbone once."""
    h, w = a.shape[-2:]
    x, y = _lpips_input(a), _lpips_input(b)
    feats = lpips_features(model, torch.cat([x, y]), cache=cache)
    n = a.shape[0]
    d = 0
    for lin, f in zip(model.lins, feats):
        # The head's 1x1 convolution as a weighted channel sum: a convolution's batched kernels would
        # make each pair's value depend (in the last bits) on the number of pairs beside it.
        per_layer = ((f[:n] - f[n:]) ** 2 * lin.model[-1].weight).sum(1, keepdim=True)
        d = d + (resize.bilinear(per_layer, x.shape[-2:]) if spatial else per_layer.mean([2, 3], keepdim=True))
    d = d.float().cpu()
    if not spatial:
        return d.reshape(-1)
    return resize.bilinear(d, (h, w))


def _lpips_input(a: torch.Tensor) -> torch.Tensor:
    """AlexNet's strides leave nothing of images under ``MIN_SIZE``: those are upsampled."""
    h, w = a.shape[-2:]
    if min(h, w) >= MIN_SIZE:
        return a
    scale = MIN_SIZE / min(h, w)
    return resize.bilinear(a, (round(h * scale), round(w * scale)))


@torch.no_grad()
def lpips_features(model: torch.nn.Module, images: torch.Tensor,
                   cache: TensorLRU | None = None) -> list[torch.Tensor]:
    """The LPIPS backbone's unit-normalised features of ``(B, 1, H, W)`` images in [0, 1], one
    ``(B, C, h, w)`` tensor per layer. Images not in ``cache`` (a new one per call if None) go
    through the backbone together, in fixed chunks (:func:`ix2x.classifiers.base.fixed_chunks`)."""
    import lpips

    store = cache if cache is not None else TensorLRU(FEATURE_CACHE_BYTES)

    token = model.__dict__.setdefault("_feature_token", object())  # unlike id(), never reused
    keys = [(token, content_key(im)) for im in images]
    todo = list(dict.fromkeys(k for k in keys if k not in store))  # unique, in order
    if todo:
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        device = next(model.parameters()).device
        new = images[[first[k] for k in todo]].to(device)
        done = 0
        for chunk, n in fixed_chunks(new):  # each image's features independent of the others
            x = model.scaling_layer(chunk.repeat(1, 3, 1, 1) * 2 - 1)  # * 2 - 1: lpips' normalize=True
            outs = [lpips.normalize_tensor(o) for o in model.net(x.contiguous(memory_format=torch.channels_last))]
            for j in range(n):
                # Kept on the CPU (a copy: a view would keep the whole chunk), so that a GPU run's peak
                # memory, which the runner reports per editor, does not include this cache.
                store.put(todo[done + j], [o[j].to("cpu", copy=True) for o in outs])
            done += n
    device = next(model.parameters()).device
    feats = [torch.stack(layer).to(device) for layer in zip(*(store.get(k) for k in keys))]
    store.trim()
    return feats
