"""Helpers shared by subcommands: suite resolution with command-line precedence."""

from __future__ import annotations

import argparse

from pathlib import Path

from ix2x.configs import parse_assignments
from ix2x.errors import UserError
from ix2x.suite import Suite, with_overrides


def require_run_dir(path: str | Path, what: str) -> Path:
    """``path`` if it is a run directory (holds run.json), else a one-line usage error."""
    p = Path(path)
    if not (p / "run.json").is_file():
        state = "does not exist" if not p.exists() else ("is a file" if p.is_file() else "holds no run.json")
        raise UserError(f"{what} must be a run directory (results/<suite>/<run-id>/ with run.json), got {p}, "
                        f"which {state}. `ls results/*/` lists the runs.")
    return p


def suite_from_args(args: argparse.Namespace) -> Suite:
    """The suite named by ``--suite`` with the command line's overrides applied (``run_suite``'s
    keywords, from the options this subcommand has)."""
    from ix2x.benchmarks.api import build_suite

    options = ("data", "split", "limit", "editors", "metrics", "seed", "batch_size", "device", "batch_timeout",
               "threads")
    suite = build_suite(args.suite, **{k: getattr(args, k, None) for k in options})
    if getattr(args, "link_root", None):
        suite = with_overrides(suite, link_roots=tuple(dict.fromkeys((*suite.data.link_roots, *args.link_root))))
    return apply_editor_args(suite, getattr(args, "editor_arg", None) or [])


def apply_editor_args(suite: Suite, pairs: list[str]) -> Suite:
    """Apply ``[EDITOR.]KEY=VALUE`` settings (``run_suite``'s ``editor_args``, as strings)."""
    from ix2x.benchmarks.api import with_editor_args

    return with_editor_args(suite, parse_assignments(pairs, flag="--editor-arg"), where="--editor-arg")


def add_launch_arguments(p: argparse.ArgumentParser) -> None:
    """Options of how a run is carried out, shared with ``ix2x score``."""
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads while editing and scoring (default: the suite's, else the CPUs this "
                        "process may use; recorded in run.json, kept on --resume and when a --shard starts "
                        "again; edits and scores can differ in their last bits between counts)")
    p.add_argument("--shard", default=None, metavar="I/N|slurm",
                   help="run only shard I of N (0 <= I < N) as an independent job, e.g. one task of a Slurm job "
                        "array (`slurm` reads SLURM_ARRAY_TASK_ID/COUNT); each shard writes "
                        "OUT/<suite>/shard-I-of-N (started again, it resumes); join them with `ix2x merge`. "
                        "Samples split by a hash of their id (docs/cluster.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def launch(args: argparse.Namespace, suite) -> int:
    """Run ``suite`` (or resume ``args.resume``) and print what happened; shared with ``ix2x score``."""
    from ix2x.benchmarks.console import launch as run_and_print

    if args.resume:
        require_run_dir(args.resume, "--resume")
    options = ("out", "resume", "shard", "quiet", "allow_changed_data", "skip_crashed", "threads",
               "batch_timeout", "editors")
    return run_and_print(suite, **{k: getattr(args, k) for k in options if hasattr(args, k)})
