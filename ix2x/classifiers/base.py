"""What every classifier behind the metrics returns, and the shared input preparation.

A classifier takes a batch of harness images, float32 ``(B, 1, H, W)`` in ``[0, 1]``, and returns
:class:`Outputs`: calibrated finding probabilities (0.5 is the operating point; no caller applies
another sigmoid) and whichever attributes it predicts. Each adapter owns its model's input contract
(size, normalisation); callers never preprocess.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Iterator, Sequence

import torch

from ix2x import resize

SEX_CLASSES: tuple[str, str] = ("M", "F")


@dataclass
class Outputs:
    """Predictions for a batch of B images. Every tensor is on the CPU, float32.

    ``probs`` ``(B, len(findings))``: P(finding present), calibrated so that 0.5 is the operating
    point. ``levels`` ``(B, len(findings))``: predicted severity on the phantom's ordinal scale
    (0 = absent), only from classifiers that predict levels. ``sex`` ``(B,)``: P(female).
    ``age`` ``(B,)``: years. ``group`` ``(B, len(group_names))``: class probabilities of the
    three-class attribute (``group_kind`` says which: "race" for real data, "habitus" for phantoms).
    """

    findings: tuple[str, ...] = ()
    probs: torch.Tensor | None = None
    levels: torch.Tensor | None = None
    sex: torch.Tensor | None = None
    age: torch.Tensor | None = None
    group: torch.Tensor | None = None
    group_names: tuple[str, ...] = ()
    group_kind: str | None = None

    TENSORS: ClassVar[tuple[str, ...]] = ("probs", "levels", "sex", "age", "group")

    def rows(self, a: int, b: int) -> "Outputs":
        """The predictions of images ``a:b``."""
        kw = {f: getattr(self, f) for f in ("findings", "group_names", "group_kind")}
        for f in self.TENSORS:
            t = getattr(self, f)
            kw[f] = None if t is None else t[a:b]
        return Outputs(**kw)

    @staticmethod
    def concat(parts: "Sequence[Outputs]") -> "Outputs":
        """One ``Outputs`` for the images of ``parts`` in order, every tensor on the CPU, float32."""
        first = parts[0]
        out = Outputs(findings=first.findings, group_names=first.group_names, group_kind=first.group_kind)
        for f in Outputs.TENSORS:
            if getattr(first, f) is not None:
                setattr(out, f, torch.cat([getattr(c, f).detach().float().cpu() for c in parts]))
        return out

    def merged(self, other: "Outputs") -> "Outputs":
        """Fields of ``self`` where set, else ``other``'s (combines a pathology and a
        demographic model into one output)."""
        out = Outputs(**{f: getattr(self, f) for f in self.__dataclass_fields__})
        for f in out.__dataclass_fields__:
            if getattr(out, f) in (None, ()):
                setattr(out, f, getattr(other, f))
        return out


class Classifier(abc.ABC):
    """A frozen, batched predictor over harness images. Subclasses implement ``_predict`` on a
    chunk already on ``self.device``; ``predict`` handles chunking, no-grad and the device."""

    def __init__(self, name: str, device: str | torch.device = "cpu") -> None:
        self.name = name
        self.device = torch.device(device)
        # {weights file: SHA-256} of what this classifier loaded, for the run record.
        self.weight_files: dict[str, str] = {}

    findings: tuple[str, ...] = ()
    attributes: frozenset[str] = frozenset()  # subset of {"sex", "age", "group"}
    predicts_levels: bool = False
    # The side of the square input the network sees, or None when it takes several sizes: the
    # scoring state resizes each image to it once, from the original, before caching predictions.
    input_size: int | None = None

    @abc.abstractmethod
    def _predict(self, images: torch.Tensor) -> Outputs:
        """``images`` ``(b, 1, H, W)`` in [0, 1] on ``self.device``."""

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> Outputs:
        """Predictions for ``images``, float32 ``(B, 1, H, W)`` in ``[0, 1]`` (any device), run in
        chunks of exactly ``CHUNK`` images so that each image's outputs never depend on the others."""
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"`images` must have shape (B, 1, H, W), got {tuple(images.shape)}.")
        chunks = [self._predict(chunk).rows(0, n)
                  for chunk, n in fixed_chunks(images.to(self.device).float())]
        return Outputs.concat(chunks)


# Networks behind the metrics always see batches of exactly this many images. CPU (oneDNN) and GPU
# kernels choose their algorithm by batch shape, so an image's outputs change in the last bits with
# the number of images beside it, though never with their content or its position (checked by a
# test): fixed chunks make every score independent of the batch size, of what a per-image cache
# already held, of resuming and of sharding.
CHUNK = 8


def fixed_chunks(images: torch.Tensor, size: int = CHUNK) -> Iterator[tuple[torch.Tensor, int]]:
    """``images`` ``(B, ...)`` in chunks of exactly ``size``, the last one padded with zeros, each
    with the number of real images it holds (the first ones)."""
    for i in range(0, images.shape[0], size):
        chunk = images[i:i + size]
        n = chunk.shape[0]
        if n < size:
            chunk = torch.cat([chunk, chunk.new_zeros((size - n, *chunk.shape[1:]))])
        yield chunk, n


def square_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop ``(B, C, H, W)`` to a square, then resize to ``size`` with the antialiased
    bilinear resize torchxrayvision itself uses (``xrv.utils.fix_resolution``)."""
    h, w = images.shape[-2:]
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        images = images[..., top:top + s, left:left + s]
    return resize.antialiased(images, (size, size))


def sha256_of(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_with_card(path, build, what: str, how_to_get: str) -> tuple[dict, torch.nn.Module]:
    """A shipped small network: ``path`` (.safetensors) and its model card (the .json beside it,
    which ``build(card)`` turns into the network the weights load into). A missing file raises
    MissingWeightsError naming it and ``how_to_get``; weights that do not fit the card, UserError."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    from ix2x.errors import MissingWeightsError, UserError

    path = Path(path)
    card_path = path.with_suffix(".json")
    for p in (path, card_path):
        if not p.is_file():
            raise MissingWeightsError(f"{what} file not found: {p}. {how_to_get}")
    try:
        card = json.loads(card_path.read_text())
    except ValueError as e:
        raise UserError(f"model card {card_path} is not valid JSON: {e}. Restore it beside {path.name}.") from e
    try:
        net = build(card)
        net.load_state_dict(load_file(str(path)))
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise UserError(f"{path} does not match its model card {card_path}: {e}") from e
    return card, net


class Combined(Classifier):
    """A pathology classifier and an attribute classifier answering as one."""

    def __init__(self, name: str, parts: list[Classifier]) -> None:
        super().__init__(name, parts[0].device)
        self.parts = parts
        self.findings = next((p.findings for p in parts if p.findings), ())
        self.attributes = frozenset().union(*(p.attributes for p in parts))
        self.predicts_levels = any(p.predicts_levels for p in parts)
        self.weight_files = {k: v for p in parts for k, v in getattr(p, "weight_files", {}).items()}

    def _predict(self, images: torch.Tensor) -> Outputs:
        out = Outputs()
        for p in self.parts:
            out = out.merged(p.predict(images))
        return out
