"""``ix2x export``: write a run's edits out as folders that ``ix2x score`` reads."""

from __future__ import annotations

import argparse

HELP = "write a run's edits (with guidance maps and edit masks) to FOLDER/<editor>/<sample_id>.png"
DESCRIPTION = """Copy the edits a run saved (16-bit PNG, byte for byte) into FOLDER/<editor>/, one
<sample_id>.png per sample with <sample_id>.guidance.png and <sample_id>.mask.png where the editor
made them: the layout `ix2x score` reads. Share them, score them elsewhere, or score them here again:
`ix2x score --edits NAME=FOLDER/<editor>` reproduces the run's metric values. FOLDER/export.json
lists what was exported and the samples that had no edit (failed records)."""
EXAMPLES = """examples:
  ix2x export results/phantom/RUN --out shared_edits
  ix2x export results/phantom/RUN --out shared_edits --editors instructx2x,oracle
  ix2x score --suite phantom --edits ix2x=shared_edits/instructx2x
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="FOLDER", help="where the editors' folders go")
    p.add_argument("--editors", default=None, help="comma-separated editor labels (default: all of the run's)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ix2x.cli.common import require_run_dir

    require_run_dir(args.run_dir, "RUN_DIR")
    from ix2x.benchmarks.outputs import export_run

    editors = [e.strip() for e in args.editors.split(",") if e.strip()] if args.editors else None
    manifest = export_run(Path(args.run_dir), Path(args.out), editors)
    for name, e in manifest["editors"].items():
        missing = f"; {len(e['not_exported'])} sample(s) had no edit" if e["not_exported"] else ""
        print(f"{name}: {e['n_exported']} edit(s) -> {e['folder']}{missing}")
    print(f"manifest: {Path(args.out) / 'export.json'}")
    return 0
