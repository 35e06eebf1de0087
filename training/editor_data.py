"""Training data for InstructPix2Pix-architecture editors: pairs, augmentation, conditioning dropout.

Every random choice of a step comes from one ``torch.Generator`` seeded from (seed, step, micro-batch,
rank) (:func:`step_generator`, seeds from :mod:`ix2x.seeding`), and the data order from per-epoch permutations seeded from (seed,
epoch), so a run resumed from a checkpoint draws exactly what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ix2x import resize
from ix2x.seeding import epoch_seed, training_step_seed

_SIDE = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def swap_laterality(instruction: str) -> str:
    """Swap the words "left" and "right" (keeping their case), as a horizontal flip swaps the sides.
    ``"Add the finding of left pleural effusion."`` -> ``"Add the finding of right pleural effusion."``"""

    def repl(m: re.Match) -> str:
        word = m.group(0)
        other = "right" if word.lower() == "left" else "left"
        if word.isupper():
            return other.upper()
        return other.capitalize() if word[0].isupper() else other

    return _SIDE.sub(repl, instruction)


def dropout_masks(u: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditioning dropout from uniforms ``u`` (B,) in [0, 1): (drop_text, drop_image), bool (B,).

    InstructPix2Pix's scheme (diffusers' ``train_instruct_pix2pix.py``): u < p drops the text only,
    p <= u < 2p drops both, 2p <= u < 3p drops the image only; each case has probability p."""
    drop_text = u < 2 * p
    drop_image = (u >= p) & (u < 3 * p)
    return drop_text, drop_image


def step_generator(seed: int, step: int, micro: int = 0, rank: int = 0) -> torch.Generator:
    """The CPU generator of one micro-batch: a fixed function of its coordinates."""
    return torch.Generator("cpu").manual_seed(training_step_seed(seed, step, micro, rank))


def batch_indices(n: int, seed: int, start: int, count: int, stream: str = "train") -> list[int]:
    """Positions ``start .. start + count - 1`` of the endless stream of epoch permutations of ``n``
    items (epoch e is ``randperm(n)`` seeded by :func:`ix2x.seeding.epoch_seed` (seed, e, stream))."""
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}.")
    out: list[int] = []
    pos = start
    perm_epoch, perm = -1, None
    while len(out) < count:
        epoch, offset = divmod(pos, n)
        if epoch != perm_epoch:
            g = torch.Generator("cpu").manual_seed(epoch_seed(seed, epoch, stream))
            perm, perm_epoch = torch.randperm(n, generator=g).tolist(), epoch
        take = min(count - len(out), n - offset)
        out.extend(perm[offset:offset + take])
        pos += take
    return out


@dataclass
class Batch:
    """``past`` and ``current`` (B, 3, R, R) in [-1, 1]; ``prompts`` after the laterality swap;
    ``flipped`` (B,) bool; ``angles`` (B,) degrees."""

    past: torch.Tensor
    current: torch.Tensor
    prompts: list[str]
    flipped: torch.Tensor
    angles: torch.Tensor


class EditPairs:
    """(past, current, instruction) pairs of one split of a MIMIC-EDIT-INSTRUCTION folder, images as
    (1, R, R) float32 in [0, 1] at ``resolution``. ``preload`` decodes every pair once, as uint8."""

    def __init__(self, root: str | Path, split: str, resolution: int, *, limit: int | None = None,
                 preload: bool = False) -> None:
        from ix2x.data.mimic import MimicEditDataset

        self.data = MimicEditDataset(root, split, limit)
        self.resolution = resolution
        self.instructions: list[str] = [str(s) for s in self.data.frame["instruction"]]
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        if preload:
            self._cache = [self._load(i, as_uint8=True) for i in range(len(self))]

    def __len__(self) -> int:
        return len(self.data)

    def _load(self, i: int, as_uint8: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.data[i]
        size = (self.resolution, self.resolution)
        past, cur = (resize.antialiased(x.float(), size, clamp=True) for x in (s.image, s.target))
        if as_uint8:
            return (past * 255).round().to(torch.uint8), (cur * 255).round().to(torch.uint8)
        return past, cur

    def pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        if self._cache is not None:
            past, cur = self._cache[i]
            return past.float() / 255, cur.float() / 255, self.instructions[i]
        past, cur = self._load(i)
        return past, cur, self.instructions[i]

    def batch(self, indices: Sequence[int], gen: torch.Generator, *, rotation: float, hflip: float,
              swap: bool = True) -> Batch:
        """Load and augment: one rotation angle and one flip per pair, applied to both images."""
        pairs = [self.pair(i) for i in indices]
        past = torch.stack([p[0] for p in pairs])
        cur = torch.stack([p[1] for p in pairs])
        b = len(pairs)
        flipped = torch.rand(b, generator=gen) < hflip
        angles = (torch.rand(b, generator=gen) * 2 - 1) * rotation
        past, cur = augment(past, cur, flipped, angles)
        prompts = [swap_laterality(p[2]) if (f and swap) else p[2] for p, f in zip(pairs, flipped.tolist())]
        to_model = lambda x: (x * 2 - 1).repeat(1, 3, 1, 1)  # noqa: E731
        return Batch(to_model(past), to_model(cur), prompts, flipped, angles)


def augment(past: torch.Tensor, cur: torch.Tensor, flipped: torch.Tensor, angles: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip (where ``flipped``) then rotate by ``angles`` degrees both (B, 1, R, R) stacks the same way.
    Rotation is bilinear with border padding; angle 0 leaves an image bit-identical."""
    f = flipped.view(-1, 1, 1, 1)
    past = torch.where(f, past.flip(-1), past)
    cur = torch.where(f, cur.flip(-1), cur)
    if bool((angles != 0).any()):
        rad = angles.float() * math.pi / 180
        c, s = torch.cos(rad), torch.sin(rad)
        theta = torch.stack([torch.stack([c, -s, torch.zeros_like(c)], 1),
                             torch.stack([s, c, torch.zeros_like(c)], 1)], 1)
        grid = F.affine_grid(theta, list(past.shape), align_corners=False)
        rotate = lambda x: F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)  # noqa: E731
        keep = (angles == 0).view(-1, 1, 1, 1)
        past = torch.where(keep, past, rotate(past))
        cur = torch.where(keep, cur, rotate(cur))
    return past, cur
