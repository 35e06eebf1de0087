"""The phantom classifiers: one small CNN with finding, level and attribute heads.

Trained by this project on the phantom training split (``ix2x train-classifier``, code in
``training/classifiers.py``), to ship as ``weights/phantom.safetensors`` with ``weights/phantom.json``
(architecture, label names, training config and held-out scores) once it meets the held-out
criterion; ``train-classifier`` refuses to write weights that do not.

Input: harness images ``(B, 1, H, W)`` in [0, 1], resized to ``config["size"]`` (the input size it
was trained at, recorded in its JSON: 128 px, the phantom render size, for the shipped net; at 96 px
small pneumonia blurs into consolidation) and standardised by the training-set mean and std stored
in the config. Outputs: P(finding) from a sigmoid of a BCE-trained head, so 0.5 is its operating
point like xrv's calibrated outputs; level on the ordinal scale (index in
``ix2x.data.phantom.FINDING_LEVELS`` + 1, 0 = absent); P(female); age in years; habitus probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ix2x.classifiers.base import Classifier, Outputs, load_with_card, sha256_of, square_resize
from ix2x.errors import UserError

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "phantom.safetensors"


class PhantomNet(nn.Module):
    """Four conv blocks (width w, 2w, 4w, 8w; each halves the size), a 4x4 spatial summary (the
    heads need where things are: side, heart size), a hidden layer, then one linear layer whose
    outputs split into: finding logits (F), levels (F), sex logit (1), age (1, standardised),
    group logits (G)."""

    def __init__(self, n_findings: int, n_groups: int = 3, width: int = 16, hidden: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in (width, 2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.hidden = nn.Sequential(nn.Dropout(0.2), nn.Linear(c_in * 16, hidden), nn.ReLU(inplace=True))
        self.n_findings, self.n_groups = n_findings, n_groups
        self.head = nn.Linear(hidden, 2 * n_findings + 2 + n_groups)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(self.hidden(self.features(x)))
        f, g = self.n_findings, self.n_groups
        return {"finding_logits": out[:, :f], "levels": out[:, f:2 * f], "sex_logit": out[:, 2 * f],
                "age_z": out[:, 2 * f + 1], "group_logits": out[:, 2 * f + 2:2 * f + 2 + g]}


def build_net(config: Mapping[str, Any]) -> PhantomNet:
    return PhantomNet(len(config["findings"]), len(config["group_names"]), config["width"], config["hidden"])


def prepare(images: torch.Tensor, config: Mapping[str, Any]) -> torch.Tensor:
    """Harness images -> the network's input (``size`` px, standardised)."""
    x = square_resize(images, int(config["size"]))
    return (x - config["pixel_mean"]) / config["pixel_std"]


class PhantomClassifier(Classifier):
    """The trained phantom CNN. ``path``: a ``.safetensors`` file with a ``.json`` config beside it."""

    attributes = frozenset({"sex", "age", "group"})
    predicts_levels = True

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        path = Path(path) if path is not None else DEFAULT_WEIGHTS
        super().__init__(f"phantom:{path.name}" if path != DEFAULT_WEIGHTS else "phantom", device)
        self.config, net = load_with_card(
            path, build_net, "phantom classifier",
            f"Train it with `ix2x train-classifier --out {WEIGHTS_DIR}` (CPU, about 25 minutes; it writes weights "
            "only if they pass the held-out criterion), or pass the path of your own .safetensors file as the "
            "classifier spec.")
        # channels_last: PyTorch's CPU convolutions (oneDNN) run this net about 2x faster in it,
        # which matters because classifier_shift and friends score every edit of a suite.
        self.net = net.eval().to(self.device, memory_format=torch.channels_last)
        self.weight_files = {str(path): sha256_of(path)}
        self.input_size = int(self.config["size"])
        self.findings = tuple(self.config["findings"])
        self.group_names = tuple(self.config["group_names"])

    @classmethod
    def check_arg(cls, arg: str | None) -> None:
        if arg is not None and Path(arg).suffix != ".safetensors":
            raise UserError(f"`phantom:PATH` must name a .safetensors file, got {arg!r}.")

    @staticmethod
    def problems(arg: str | None) -> list[str]:
        """The files ``phantom:PATH`` reads that are missing (the shipped weights come with the package)."""
        if arg is None:
            return []
        path = Path(arg)
        return [f"{what} weights not found: {file}; train it with `ix2x train-classifier` or fix the path"
                for file, what in ((path, "phantom classifier"), (path.with_suffix(".json"), "phantom classifier config"))
                if not file.is_file()]

    @classmethod
    def from_spec(cls, arg: str | None, device: str | torch.device = "cpu") -> "PhantomClassifier":
        """``phantom`` (the shipped weights) or ``phantom:PATH.safetensors``."""
        cls.check_arg(arg)
        return cls(arg, device=device)

    def _predict(self, images: torch.Tensor) -> Outputs:
        out = self.net(prepare(images, self.config).contiguous(memory_format=torch.channels_last))
        c = self.config
        return Outputs(findings=self.findings, probs=out["finding_logits"].sigmoid(),
                       levels=out["levels"].clamp(min=0), sex=out["sex_logit"].sigmoid(),
                       age=out["age_z"] * c["age_std"] + c["age_mean"],
                       group=out["group_logits"].softmax(dim=1), group_names=self.group_names,
                       group_kind=c.get("group_kind", "habitus"))
