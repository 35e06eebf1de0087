"""Train the phantom segmenter (``ix2x.classifiers.segmentation.TinyUNet``) on the CPU in minutes.

    python -m ix2x.training.segmenter --out ix2x/classifiers/weights/phantom_segmenter.safetensors

Data: un-jittered 128 px phantom pairs rendered in memory from generator seeds the benchmark suites
(seed 0) and the phantom classifier's training data (seed 1000) do not use: ``TRAIN_SEED`` for
training, ``HELD_OUT_SEED`` for the held-out Dice on the model card. Both studies of each pair are
images, each with its exact masks (``ix2x.data.phantom_structures``). Edits are not phantoms: mild
random brightness, contrast, blur and noise (a seeded generator per step) keep the segmenter from
keying on the renderer's exact intensities.

One thread and fixed seeds: the same command writes the same weights on the same machine.
Writes the weights and the model card ``.json`` beside them (architecture, input statistics,
training settings, held-out Dice per structure and the command).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ix2x.classifiers.segmentation import STRUCTURES, TinyUNet, unet_input

TRAIN_SEED = 2000
HELD_OUT_SEED = 2001
COMMAND = "python -m ix2x.training.segmenter --out ix2x/classifiers/weights/phantom_segmenter.safetensors"


def render_set(seed: int, n_pairs: int, size: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(2n, 1, S, S)`` in [0, 1] and masks ``(2n, 3, S, S)`` of pairs ``start .. start+n``
    of generator ``seed`` (pair i drawn from ``default_rng([seed, i])``, as ``phantom.generate`` does)."""
    from ix2x.data.phantom import render_pair
    from ix2x.data.phantom_structures import pair_masks

    images, masks = [], []
    for i in range(start, start + n_pairs):
        pair = render_pair(np.random.default_rng([seed, i]), size)
        for img, m in zip((pair.past, pair.current), pair_masks(pair, size)):
            images.append(img)
            masks.append(np.stack([m[s] for s in STRUCTURES]))
    x = torch.from_numpy(np.stack(images)).float().div_(255)[:, None]
    return x, torch.from_numpy(np.stack(masks)).float()


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=g)  # noqa: E731
    x = (x - 0.5) * u(0.8, 1.2) + 0.5 + u(-0.08, 0.08)
    if bool(torch.rand(1, generator=g) < 0.5):  # a 3x3 binomial blur on half the batches
        k = torch.tensor([1.0, 2.0, 1.0])
        k = (k[:, None] * k[None]) / 16
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.view(1, 1, 3, 3))
    x = x + u(0.0, 0.03) * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1)


def loss_fn(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE plus soft Dice per structure (Dice keeps the small heart from being swamped)."""
    p = logits.sigmoid()
    inter = (p * masks).sum((2, 3))
    soft_dice = (2 * inter + 1) / (p.sum((2, 3)) + masks.sum((2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, masks) + (1 - soft_dice).mean()


@torch.no_grad()
def held_out_dice(net: torch.nn.Module, config: dict[str, Any], x: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Mean Dice per structure (masks at probability 0.5) over the images of ``x``."""
    from ix2x.overlap import dice

    net.eval()
    pred = torch.cat([net(unet_input(x[i:i + 32], config)) for i in range(0, len(x), 32)]).sigmoid() >= 0.5
    truth = masks.bool()
    return {s: float(np.mean([dice(pred[i, k].numpy(), truth[i, k].numpy()) for i in range(len(x))]))
            for k, s in enumerate(STRUCTURES)}


def train(out: Path, *, n_train: int = 400, n_held_out: int = 100, size: int = 128, width: int = 8,
          steps: int = 700, batch: int = 8, lr: float = 3e-3, seed: int = 0) -> dict[str, Any]:
    from safetensors.torch import save_file
    from tqdm import tqdm

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    t0 = time.time()
    x, m = render_set(TRAIN_SEED, n_train, size)
    xh, mh = render_set(HELD_OUT_SEED, n_held_out, size)
    config: dict[str, Any] = {
        "architecture": "TinyUNet", "width": width, "size": size, "structures": list(STRUCTURES),
        "pixel_mean": float(x.mean()), "pixel_std": float(x.std()),
        "side_convention": "patient sides: left_lung is the image's right half of a PA film",
        "training": {"train_seed": TRAIN_SEED, "n_train_pairs": n_train, "steps": steps, "batch": batch,
                     "lr": lr, "seed": seed, "loss": "BCE + soft Dice", "optimizer": "AdamW, cosine LR",
                     "augmentation": "brightness/contrast 0.8-1.2 +-0.08, 3x3 blur p=0.5, noise sigma <= 0.03",
                     "command": COMMAND},
    }
    net = TinyUNet(width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    net.train()
    bar = tqdm(range(steps), desc="segmenter", unit="step")
    for _ in bar:
        idx = torch.randint(len(x), (batch,), generator=g)
        xb = augment(x[idx], g)
        loss = loss_fn(net(unet_input(xb, config)), m[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    config["held_out"] = {"generator_seed": HELD_OUT_SEED, "n_pairs": n_held_out, "n_images": len(xh),
                          "threshold": 0.5, "dice": held_out_dice(net, config, xh, mh)}
    config["training"]["seconds"] = round(time.time() - t0, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out))
    out.with_suffix(".json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return config


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ix2x.training.segmenter", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="weights file (.safetensors); the .json card goes beside it")
    ap.add_argument("--n-train", type=int, default=400, help="training pairs (two images each)")
    ap.add_argument("--n-held-out", type=int, default=100, help="held-out pairs for the model card's Dice")
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--width", type=int, default=8, help="UNet width of the first level")
    a = ap.parse_args(argv)
    if a.out.suffix != ".safetensors":
        ap.error(f"`--out` must end in .safetensors, got {a.out}.")
    card = train(a.out, n_train=a.n_train, n_held_out=a.n_held_out, steps=a.steps, width=a.width)
    print(json.dumps(card["held_out"], indent=2))


if __name__ == "__main__":
    main()
