"""``ix2x validate``: everything ``ix2x run`` will load, checked without loading it."""

from __future__ import annotations

import argparse
import json

HELP = "check that a run would start: suite, settings, model and classifier files, device, data"
DESCRIPTION = """Check everything a run needs before spending hours on it: suite keys and types,
installed editors and metrics, each editor's model folder (every component: unet, vae, text_encoder,
tokenizer, scheduler) or its Hugging Face cache entry, each classifier's weight file at the path
torchxrayvision reads ($HOME/.torchxrayvision/models_data), the LPIPS backbone
($TORCH_HOME/hub/checkpoints), the device (CUDA present, free memory against the model's size), and
the dataset (missing or unreadable images, unparsable instructions, unknown columns). Each problem is
one line naming the file, where it goes and the command that fetches it. Exit 0 only when `ix2x run`
with the same options would start; 1 when something is missing; 2 for a usage error.
Without --suite, --data DIR is checked with the suites that read a dataset folder (mimic), or
with the phantom suite when DIR was written by `ix2x phantom` (it holds phantom.json)."""
EXAMPLES = """examples:
  ix2x validate --suite phantom
  ix2x validate --data /data/mimic-edit-instruction
  ix2x validate --suite mimic --data /data/mimic-edit-instruction --editor-arg instructx2x.model=/models/ix2x
  ix2x validate --editors my_editor --metrics lpips --device cpu --json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default=None, help="suite name or .yaml path (default: phantom; with --data "
                   "and no --suite: mimic)")
    p.add_argument("--data", default=None, metavar="DIR", help="MIMIC-EDIT-INSTRUCTION directory to check")
    p.add_argument("--link-root", action="append", default=None, metavar="DIR",
                   help="a folder the dataset's symlinks may point into (repeatable; `ix2x dataset build` "
                        "symlinks into the MIMIC-CXR folder); adds to the suite's data.link_roots")
    p.add_argument("--split", default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--editors", default=None, help="comma-separated editor labels or registry names, as for run")
    p.add_argument("--metrics", default=None, help="comma-separated metric names, as for run")
    p.add_argument("--editor-arg", action="append", default=[], metavar="[EDITOR.]KEY=VALUE")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the suite's)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout instead of text")


def _written_by_phantom(data: str) -> bool:
    from pathlib import Path

    return (Path(data).expanduser() / "phantom.json").is_file()


def fitting_suites(data: str | None) -> tuple[list[str], list[str]]:
    """(built-in suites that read a dataset folder, those that generate their own phantoms)."""
    from ix2x.benchmarks import suite_names, suite_path
    from ix2x.suite import load_suite

    dirs, phantoms = [], []
    for name in suite_names():
        (dirs if load_suite(suite_path(name)).data.source == "dir" else phantoms).append(name)
    return dirs, phantoms


def run(args: argparse.Namespace) -> int:
    from ix2x import preflight
    from ix2x.cli.common import suite_from_args

    out: dict = {"problems": []}
    lines: list[str] = []
    if args.suite is None and args.data and _written_by_phantom(args.data):
        # A folder from `ix2x phantom` has what the phantom suites score (true masks and targets,
        # labels, the phantom classifiers' findings): mimic would ask for real-data weights.
        from ix2x.benchmarks import DEFAULT_SUITE

        args.suite = DEFAULT_SUITE
        out["fitting_suites"] = [DEFAULT_SUITE]
        lines.append(f"data {args.data}: written by `ix2x phantom` (phantom.json); checking with the "
                     f"`{DEFAULT_SUITE}` suite on this folder (choose another with --suite)")
    elif args.suite is None and args.data:
        dirs, phantoms = fitting_suites(args.data)
        out["fitting_suites"] = dirs
        args.suite = "mimic" if "mimic" in dirs else (dirs[0] if dirs else None)
        lines.append(f"data {args.data}: suites that read a dataset folder: {', '.join(dirs) or '(none)'}; "
                     f"checking with `{args.suite}` (choose with --suite; {', '.join(phantoms)} generate phantoms)")
    suite = suite_from_args(args)
    preflight.check_specs(suite, models=False)  # names, device, data folder: before torch is imported

    from ix2x.benchmarks import runner

    editors, metrics = runner.resolve(suite)  # every setting against its Config
    out.update(suite=suite.name, device=suite.device, editors=[c.key for c in editors],
               metrics=[c.key for c in metrics])
    lines.append(f"suite `{suite.name}`: {len(editors)} editor(s), {len(metrics)} metric(s), settings valid, "
                 f"device {suite.device}")
    problems = preflight.device_problems(suite.device)
    # As `run` judges them (one check for both): an editor that cannot even be built does not stop
    # a run, which records its samples as failed and goes on with the others; say so, without failing.
    contained: list[str] = []
    problems += preflight.component_problems(editors, metrics, suite.device, strict=False, contained=contained)
    warnings = [f"{line}: `ix2x run` starts without it and records its samples as failed" for line in contained]
    out["warnings"] = warnings
    if suite.data.source == "dir":
        from ix2x.data.sources import validate_data

        report = validate_data(suite.data)  # the suite's layout, bit depth and demographics settings
        lines.append(report.format())
        out["dataset"] = {"root": report.root, "rows": report.n_rows, "ok": report.ok, "counts": report.counts,
                          "examples": report.examples, "splits": report.splits,
                          "notes": report.notes, "extra": report.extra}
        if not report.ok:
            problems.append(f"dataset {report.root} has problems (listed above)")
    else:
        p = suite.data.phantom
        lines.append(f"data: phantoms generated on first use (n={p.n}, seed={p.seed}, size={p.size})")
    problems += _requirement_problems(suite, metrics)
    problems = list(dict.fromkeys(problems))  # two metrics naming one file: one line
    out.update(problems=problems, ok=not problems)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for line in lines:
            print(line)
        for warning in warnings:
            print(f"WARNING: {warning}")
        for problem in problems:
            print(f"PROBLEM: {problem}")
        print("ok: `ix2x run` with these options would start" if not problems else
              f"{len(problems)} problem(s): `ix2x run` would not start")
    return 0 if not problems else 1


def _requirement_problems(suite, metrics) -> list[str]:
    """What each metric needs (``Metric.requires``) against what the data provides, judged on the
    split's first sample (loads one sample, no model)."""
    from ix2x.data.sources import open_dataset
    from ix2x.errors import DataError

    try:
        dataset = open_dataset(suite.data)
        if len(dataset) == 0:
            return [f"split `{suite.data.split}` has no samples"]
        s = dataset[0]
    except DataError as e:
        return [f"metric requirements not checked: the first sample cannot be read ({e})"]
    provided = {"region": s.region is not None, "target": s.target is not None,
                "aligned_target": s.target is not None and s.target_aligned, "labels": bool(s.labels)}
    out = []
    for comp in metrics:
        for need in sorted(getattr(comp.cls, "requires", ())):
            if need in provided and not provided[need]:
                out.append(f"metric `{comp.key}` requires {need}, which this dataset does not provide "
                           "(its values would all be NaN)")
    return out
