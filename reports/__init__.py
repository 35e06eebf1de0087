"""Reports: run directories rendered to HTML (with a sample browser and figures beside it),
Markdown, booktabs LaTeX and CSV. Reads run records only (``ix2x.records``); imports no torch."""

from __future__ import annotations

from pathlib import Path

FORMATS = (".html", ".md", ".tex", ".csv")


def write_report(run_dirs: list[str | Path], out: str | Path, *, with_images: bool = True,
                 baseline: str | None = None, n_grid: int = 6, seed: int = 0) -> Path:
    """Write ``out`` from one or more run directories; the format follows its extension (.html,
    .md, .tex or .csv; anything else is an error). Returns its path. ``n_grid`` and ``seed`` are
    kept for callers of the former image grid; the sample browser shows every sample."""
    from ix2x.errors import UserError

    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"`--out` must end in {', '.join(FORMATS)}, got {out.name!r}. "
                        "Choose one of those formats (a PDF: compile the .tex table, or print the .html).")
    from ix2x.reports import data

    runs, editors = data.load(list(run_dirs))
    suffix = out.suffix.lower()
    if suffix == ".md":
        from ix2x.reports import markdown

        text = markdown.render(runs, editors, baseline=baseline)
    elif suffix == ".tex":
        from ix2x.reports import tables

        text = tables.latex(runs, editors)
    elif suffix == ".csv":
        from ix2x.reports import tables

        text = tables.csv_text(runs, editors)
    else:
        from ix2x.reports import html

        text = html.render(runs, editors, out=out, with_images=with_images, baseline=baseline)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


def terminal_leaderboard(run_dir: str | Path, *, width: int | None = None) -> str:
    """A compact leaderboard for the end of ``ix2x run`` (see :mod:`reports.terminal`), as wide as
    the terminal (120 columns when there is none)."""
    import shutil

    from ix2x.reports import data, terminal

    width = width or shutil.get_terminal_size((120, 24)).columns

    runs, editors = data.load([run_dir])
    return terminal.render(runs, editors, width=width)
