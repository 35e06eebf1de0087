"""The LPIPS network a run scores with, and the run's cache of its backbone features. The distances
themselves are computed in :mod:`ix2x.metrics.functional.lpips`.

LPIPS ships its linear heads inside the ``lpips`` package, but its backbone (AlexNet, VGG16 or
SqueezeNet 1.1) is torchvision's ImageNet weights, which torchvision would download. We never
download: the backbone is read (``torch.load(weights_only=True)``) from torch's hub cache,
``$TORCH_HOME/hub/checkpoints/<torchvision file name>``, and a missing file is a
MissingWeightsError with the command that fetches it. ``random_backbone=True`` uses lpips's own
``pnet_rand`` switch (real heads, random backbone): offline smoke runs only, not comparable to
published LPIPS values.

Nothing here is cached between calls at module level: a run's models and its feature cache live in
its :class:`~ix2x.classifiers.scoring.Scoring` object, which passes the cache in.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ix2x.errors import MissingWeightsError, UserError

NETS = ("alex", "vgg", "squeeze")


def backbone_url(net: str) -> str:
    import torchvision.models as tvm

    weights = {"alex": tvm.AlexNet_Weights, "vgg": tvm.VGG16_Weights,
               "squeeze": tvm.SqueezeNet1_1_Weights}[net]
    return weights.IMAGENET1K_V1.url


def backbone_file(net: str) -> Path:
    """Where torchvision caches the backbone: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(backbone_url(net))


RANDOM_BACKBONE_SEED = 0


def get_lpips(net: str = "alex", *, random_backbone: bool = False,
              device: str | torch.device = "cpu") -> torch.nn.Module:
    """A new ``lpips.LPIPS`` model (eval, frozen). A run builds each one once, in its
    :class:`~ix2x.classifiers.scoring.Scoring`; ``model.weight_files`` is {backbone file: SHA-256}."""
    if net not in NETS:
        raise UserError(f"`net` must be one of {', '.join(NETS)}, got {net!r}.")
    import lpips

    file = backbone_file(net)
    if not random_backbone and not file.is_file():
        raise MissingWeightsError(
            f"LPIPS {net} backbone not found: {file} (torchvision's ImageNet weights, read from "
            f"$TORCH_HOME/hub/checkpoints). On a machine with internet: `mkdir -p {file.parent} && "
            f"wget {backbone_url(net)} -O {file}`, then copy the file here; or set "
            "`random_backbone: true` for an offline smoke run (values not comparable).")
    # The random backbone is drawn from a fixed seed, without touching the caller's RNG: the
    # same suite must give the same LPIPS values in every run (it did not before: regression test).
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")  # lpips passes `pretrained=`
        torch.manual_seed(RANDOM_BACKBONE_SEED)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)  # heads from the lpips package
    weight_files = {}
    if not random_backbone:
        from ix2x.classifiers.base import sha256_of

        weight_files = {str(file): sha256_of(file)}
        state = torch.load(str(file), map_location="cpu", weights_only=True)  # a plain state dict
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        # lpips splits torchvision's `features` into slices that keep the layer indices.
        mine = {name: name.split(".", 1)[1] for name in model.net.state_dict()}
        model.net.load_state_dict({name: features[idx] for name, idx in mine.items()})
    # channels_last: about 1.3x faster AlexNet on the CPU (oneDNN), same values to float rounding.
    model.net.to(memory_format=torch.channels_last)
    model = model.eval().requires_grad_(False).to(device)
    model.weight_files = weight_files
    return model


class TensorLRU:
    """A dict of tensor lists that drops its least recently used entries beyond ``max_bytes``, but
    always keeps the ``min_items`` most recent (a batch's working set, whatever the image size)."""

    def __init__(self, max_bytes: int, *, min_items: int = 1) -> None:
        self.max_bytes = max_bytes
        self.min_items = max(1, min_items)
        self._items: "OrderedDict[Any, list[torch.Tensor]]" = OrderedDict()
        self._bytes = 0

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def put(self, key: Any, value: list[torch.Tensor]) -> None:
        self._items[key] = value
        self._bytes += sum(t.nbytes for t in value)

    def get(self, key: Any) -> list[torch.Tensor]:
        self._items.move_to_end(key)
        return self._items[key]

    def trim(self) -> None:
        while self._bytes > self.max_bytes and len(self._items) > self.min_items:
            self._bytes -= sum(t.nbytes for t in self._items.popitem(last=False)[1])

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


# Unit-normalised backbone features per (model, image content) are kept in a run's cache:
# out_of_mask_change, gt_fidelity and lpips compare the same inputs, edits and targets, and every
# editor of a run sees the same inputs and targets. 256 MB holds about 400 images at 128 px, 25 at 512 px:
# fewer than a batch's inputs, edits and targets at 512 px, so a run's cache also keeps at least
# those (WORKING_SET images per sample of a batch, see ix2x.classifiers.scoring.Scoring).
FEATURE_CACHE_BYTES = 256 * 2**20
WORKING_SET = 3  # input, edit, target
