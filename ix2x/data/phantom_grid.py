"""A figure of phantom pairs for the README: past, current, and the change mask over the current."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np


def save_grid(dataset_dir: str | Path, out_png: str | Path, n: int = 6, *, dpi: int = 80) -> Path:
    """Draw the first ``n`` pairs of a phantom dataset (one row each: past, current, the true change
    mask in red over the current) with their instructions, and save it as ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from ix2x.data.phantom import read_rows

    root = Path(dataset_dir)
    rows = read_rows(root)[:n]
    if not rows:
        raise ValueError(f"`dataset_dir` {root} has no pairs in instructions.csv.")
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.75 * len(rows)), squeeze=False,
                             gridspec_kw={"hspace": 0.28, "wspace": 0.02})
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.32 / len(rows), bottom=0.01)
    for ax_row, r in zip(axes, rows):
        past = np.asarray(Image.open(root / "past" / f"{r['past_dicom_id']}.png"))
        cur = np.asarray(Image.open(root / "current" / f"{r['current_dicom_id']}.png"))
        mask = np.asarray(Image.open(root / "masks" / r["mask"])) > 0
        overlay = np.repeat(cur[..., None], 3, axis=2).astype(np.float32) / 255
        overlay[mask] = 0.55 * overlay[mask] + 0.45 * np.array([1.0, 0.1, 0.1])
        for ax, img, title in zip(ax_row, (past, cur, overlay), ("past", "current", "change mask")):
            ax.imshow(img, cmap="gray", vmin=0, vmax=255 if img.ndim == 2 else None, interpolation="nearest")
            if ax_row is axes[0]:
                ax.text(0.5, 1.2, title, transform=ax.transAxes, fontsize=9, ha="center", weight="bold")
            ax.axis("off")
        label = f"{r['sex']}, {float(r['age']):.0f} y, {r['habitus']}: {r['instruction']}"
        ax_row[0].text(0, 1.03, "\n".join(textwrap.wrap(label, 110)), transform=ax_row[0].transAxes,
                       fontsize=8, va="bottom")
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    # A 128-colour palette keeps the README figure small (grey images, one red overlay).
    Image.open(out).convert("RGB").quantize(colors=128).save(out, optimize=True)
    return out


if __name__ == "__main__":  # python -m ix2x.data.phantom_grid DATASET OUT.png [N]
    import sys

    save_grid(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 6)
