"""Importing the report's plotting module selects no matplotlib backend for the program."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_plots_keeps_the_programs_backend(tmp_path):
    code = ("import matplotlib, pathlib; import ix2x.reports.plots as p; from matplotlib.figure import Figure; "
            f"print(matplotlib.get_backend()); "
            f"print(p.save(Figure(), pathlib.Path({str(tmp_path)!r}), 'f')['png'].read_bytes()[:4])")
    env = {**os.environ, "MPLBACKEND": "svg", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    backend, png = out.stdout.split("\n")[:2]
    assert backend == "svg"  # matplotlib.use("Agg") at import made this "agg"
    assert png == repr(b"\x89PNG")
