"""Helpers shared by subcommands: suite resolution with command-line precedence."""

from __future__ import annotations

import argparse
import dataclasses

from pathlib import Path

from ix2x.configs import ConfigError, parse_assignments
from ix2x.errors import UserError
from ix2x.suite import ComponentSpec, Suite, load_suite, with_overrides


def require_run_dir(path: str | Path, what: str) -> Path:
    """``path`` if it is a run directory (holds run.json), else a one-line usage error."""
    p = Path(path)
    if not (p / "run.json").is_file():
        state = "does not exist" if not p.exists() else ("is a file" if p.is_file() else "holds no run.json")
        raise UserError(f"{what} must be a run directory (results/<suite>/<run-id>/ with run.json), got {p}, "
                        f"which {state}. `ls results/*/` lists the runs.")
    return p


def preflight_run(suite: Suite) -> None:
    """What ``ix2x validate`` checks, minus the dataset scan: names, device and data folder before torch
    is imported, then settings, the device and every component's ``problems`` hook. Raises one error
    listing every problem, one per line, so that a run never starts to fail on its second editor."""
    from ix2x import preflight

    preflight.check_specs(suite)
    from ix2x.benchmarks import runner
    from ix2x.errors import MissingWeightsError

    editors, metrics = runner.resolve(suite)
    problems = preflight.device_problems(suite.device)
    problems += preflight.component_problems(editors, metrics, suite.device, strict=False)
    if problems:
        raise MissingWeightsError(f"{len(problems)} problem(s) stop this run (`ix2x validate` with the same "
                                  "options lists them too):\n  " + "\n  ".join(problems))


def suite_from_args(args: argparse.Namespace) -> Suite:
    """The suite named by ``--suite`` with the command line's overrides applied."""
    from ix2x.benchmarks import DEFAULT_SUITE, suite_path

    suite = load_suite(suite_path(args.suite or DEFAULT_SUITE))
    overrides = {"seed": getattr(args, "seed", None), "batch_size": getattr(args, "batch_size", None),
                 "device": getattr(args, "device", None), "split": getattr(args, "split", None),
                 "limit": getattr(args, "limit", None), "threads": getattr(args, "threads", None)}
    if overrides["threads"] is not None and overrides["threads"] < 1:
        raise UserError(f"`--threads` must be >= 1, got {overrides['threads']}. Leave it out to use the CPUs "
                        "this process may run on.")
    if getattr(args, "data", None):
        overrides.update(source="dir", path=args.data)
    suite = with_overrides(suite, **overrides)
    if getattr(args, "editors", None):
        suite = dataclasses.replace(suite, editors=_select(suite.editors, args.editors))
    if getattr(args, "metrics", None):
        names = [m.strip() for m in args.metrics.split(",") if m.strip()]
        suite = dataclasses.replace(suite, metrics=tuple(ComponentSpec(n) for n in names))
    return apply_editor_args(suite, getattr(args, "editor_arg", None) or [])


def _select(editors: tuple[ComponentSpec, ...], wanted: str) -> tuple[ComponentSpec, ...]:
    by_key = {e.key: e for e in editors}
    return tuple(by_key.get(k, ComponentSpec(k)) for k in (w.strip() for w in wanted.split(",")) if k)


def apply_editor_args(suite: Suite, pairs: list[str]) -> Suite:
    """Apply ``[EDITOR.]KEY=VALUE`` settings. A bare key applies to every editor of the suite;
    types and names are checked later against each editor's Config, before any model loads."""
    values = parse_assignments(pairs, flag="--editor-arg")
    if not values:
        return suite
    keys = {e.key for e in suite.editors}
    per_editor: dict[str, dict] = {k: {} for k in keys}
    for key, value in values.items():
        target, dot, setting = key.partition(".")
        if dot and target in keys:
            per_editor[target][setting] = value
        elif dot:
            raise ConfigError(f"`--editor-arg {key}=...` names editor `{target}`, which is not in this "
                              f"run. Editors: {', '.join(sorted(keys))}.")
        else:
            for k in keys:
                per_editor[k][key] = value
    editors = tuple(dataclasses.replace(e, args={**e.args, **per_editor[e.key]}) for e in suite.editors)
    return dataclasses.replace(suite, editors=editors)
