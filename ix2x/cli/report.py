"""``ix2x report``: render run directories into an HTML or Markdown report."""

from __future__ import annotations

import argparse

HELP = "render one or more run directories into a self-contained HTML (or Markdown) report"
DESCRIPTION = """Leaderboard with 95 % CIs and paired significance against a baseline editor,
breakdowns by operation and finding, plots, image grids with guidance-map overlays, provenance.
Reads only the run directories. Runs of real patient data (suite report_images: false) never
carry images; --no-images leaves them out of any report."""
EXAMPLES = """examples:
  ix2x report results/phantom/RUN --out report.html
  ix2x report results/phantom/RUN_A results/ablations/RUN_B --out compare.html --baseline ix2x_no_rse
  ix2x report results/phantom/RUN --out report.md
  ix2x report results/mimic/RUN --out report.html --no-images
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="report path: .html, .md, .tex (booktabs table) or .csv")
    p.add_argument("--no-images", action="store_true", help="leave out every image (patient data)")
    p.add_argument("--baseline", default=None, help="editor to test the others against (paired)")
    p.add_argument("--samples", type=int, default=6, help="rows of the image grid (default 6)")
    p.add_argument("--seed", type=int, default=0, help="which samples the grid shows")


def run(args: argparse.Namespace) -> int:
    from ix2x.cli.common import require_run_dir
    from ix2x.reports import write_report

    for run_dir in args.run_dirs:
        require_run_dir(run_dir, "RUN_DIR")
    path = write_report(args.run_dirs, args.out, with_images=not args.no_images, baseline=args.baseline,
                        n_grid=args.samples, seed=args.seed)
    print(f"report: {path}")
    return 0
