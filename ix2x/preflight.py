"""Checks before a run: what would stop it, found without loading any weight. This module only
orchestrates; every component judges its own files.

Two stages. :func:`check_specs` runs before torch is imported (the suite file has been parsed): names
registered, the suite's values (:func:`ix2x.suite.check_suite`), the data folder present, and the model
folders a suite names for the built-in diffusion editors (:func:`ix2x.diffusion.checks.named_model_problems`).
It raises the first mistake, so that a typo costs a fraction of a second. Then :func:`device_problems`
(the run's device) and :func:`component_problems` collect every editor's and metric's own
``problems(device)`` (the file, where it goes, the command that fetches it; classifiers answer through
:func:`ix2x.classifiers.problems`); ``ix2x validate`` prints them all and ``ix2x run`` refuses to start
while there are any. Nothing here imports torch at module level; :func:`device_problems` imports it
when called.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from ix2x.diffusion.checks import named_model_problems
from ix2x.errors import MissingWeightsError, UserError
from ix2x.suite import check_suite

# --------------------------------------------------------------------------------------------- stage 1
def check_specs(suite: Any, *, models: bool = True) -> None:
    """Raise the first mistake of ``suite`` that needs no import of a component (so no torch).
    ``models``: also the model folders named in the built-in diffusion editors' args (all at once)."""
    from ix2x import registry

    for kind, specs in (("editor", suite.editors), ("metric", suite.metrics)):
        known = registry.entries(kind)
        for spec in specs:
            if spec.name not in known:
                registry.load(kind, spec.name)  # raises the "did you mean" error without importing others
    check_suite(suite)  # its own values: labels, batch size, device, limit...
    data = suite.data
    if data.source == "dir":
        if not data.path:
            raise UserError(f"Suite `{suite.name}` reads a dataset folder but none is given. Pass `--data DIR` "
                            "(a MIMIC-EDIT-INSTRUCTION folder with instructions.csv, past/ and current/).")
        root = Path(data.path).expanduser()
        if not root.is_dir():
            what = "is a file" if root.is_file() else "does not exist"
            raise UserError(f"`--data` must be a MIMIC-EDIT-INSTRUCTION folder, got {root}, which {what}. "
                            "Build one with `ix2x dataset build` or point at your copy.")
        wants = [spec.key for spec in suite.editors if spec.args.get("prompt") == "dataset"]
        csv_file = root / "instructions.csv"
        if wants and csv_file.is_file():
            with open(csv_file, encoding="utf-8-sig", newline="") as fh:
                header = [c.strip() for c in next(csv.reader(fh), [])]
            if "target_report" not in header:
                raise UserError(f"{', '.join(f'`{k}`' for k in wants)} take(s) `prompt: dataset`, the dataset's "
                                f"reports, but {csv_file} has no `target_report` column: add `target_report` (and "
                                f"`source_report`) columns, or set `prompt: report` to convert the instructions.")
    if models:
        missing = [line for spec in suite.editors
                   for line in named_model_problems(spec, registry.entries("editor").get(spec.name))]
        if missing:
            raise MissingWeightsError(f"{len(missing)} problem(s) stop this run:\n  " + "\n  ".join(missing))


# ---------------------------------------------------------------------------------------------- device
def device_problems(device: str) -> list[str]:
    """The run's device: CUDA present and the index existing."""
    device = str(device)
    if not device.startswith("cuda"):
        return []
    import torch

    if not torch.cuda.is_available():
        return [f"device `{device}`: CUDA is not available here (torch {torch.__version__}, "
                f"torch.cuda.is_available() is False, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}): "
                "run on a machine with an NVIDIA GPU, or pass `--device cpu` (slow at 512 px)"]
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        return [f"device `{device}`: this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"indices 0..{torch.cuda.device_count() - 1}: pass `--device cuda:0`"]
    return []


# ------------------------------------------------------------------------------------------ components
def component_problems(editors, metrics, device: str, *, strict: bool = True,
                       contained: list[str] | None = None) -> list[str]:
    """Each editor's and metric's ``problems(device)`` hook, one line per problem prefixed by who
    reports it; a file two components need is one line naming both.

    A component that raises while being built or checked is a problem, except an editor without
    ``strict`` (``run``): the runner records that editor as failed with its error and runs the
    others, so one broken editor plugin does not stop a run of many. Metrics are not contained
    that way (every editor's records need them), so they are always checked here. The editors left
    out are appended to ``contained``, so ``validate`` can say what ``run`` will do with them."""
    found: dict[str, list[str]] = {}
    for kind, comps in (("editor", editors), ("metric", metrics)):
        for comp in comps:
            try:
                instance = comp.cls(comp.config)
                lines = [str(p) for p in (instance.problems(device) or [])]
            except (Exception, SystemExit) as e:  # a broken hook (even sys.exit) is its problem, not a traceback
                if not strict and kind == "editor":
                    if contained is not None:
                        contained.append(f"editor `{comp.key}` cannot be built or checked ({type(e).__name__}: {e})")
                    continue
                lines = [f"cannot be checked ({type(e).__name__}: {e})"]
            for line in lines:
                found.setdefault(line, []).append(f"{kind} `{comp.key}`")
    return [f"{', '.join(who)}: {line}" for line, who in found.items()]
