"""Reports: run directories rendered to a self-contained HTML page and Markdown tables.
Reads run records only (``ix2x.records``); imports no torch."""

from __future__ import annotations

from pathlib import Path


def write_report(run_dirs: list[str | Path], out: str | Path, *, with_images: bool = True,
                 baseline: str | None = None, n_grid: int = 6, seed: int = 0) -> Path:
    """Write ``out`` (.html or .md) from one or more run directories; returns its path."""
    from reports import data, html, markdown

    runs, editors = data.load(list(run_dirs))
    out = Path(out)
    if out.suffix == ".md":
        text = markdown.render(runs, editors)
    else:
        text = html.render(runs, editors, with_images=with_images, baseline=baseline, n_grid=n_grid, seed=seed)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
