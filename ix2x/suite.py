"""Suite files: one complete YAML file per benchmark, loaded into a frozen dataclass, and the one check
of a suite's values (:func:`suite_problems`, :func:`check_suite`).

Precedence: the dataclass defaults below, then the file, then the command line. Unknown keys are
errors. The built-in suites live in ``benchmarks/suites/``; any path to a YAML file works too.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ix2x.configs import build
from ix2x.errors import ConfigError, UserError


@dataclass(frozen=True)
class PhantomSpec:
    """Phantom data generated on first use and cached (same settings, same bytes)."""

    n: int = 200
    seed: int = 0
    size: int = 128
    jitter: bool = False


@dataclass(frozen=True)
class DataSpec:
    source: Literal["phantom", "dir"] = "phantom"
    path: str | None = None  # a MIMIC-EDIT-INSTRUCTION directory when source is "dir"
    split: str = "test"
    limit: int | None = None  # first N samples of the split
    phantom: PhantomSpec = PhantomSpec()
    # Where change is allowed, for region-based metrics: the dataset's own masks (phantoms: the
    # true change mask), or the pseudo-mask of the instruction's findings (real data has no truth).
    region: Literal["dataset", "pseudo_mask"] = "dataset"
    mask_source: str = "atlas"  # for region: pseudo_mask; "atlas", a folder of .npy masks, "density:<dir>"
    # Real data as users hold it (ix2x/data/mimic.py, mimic_cxr.py, mimic_iv.py; README "Running on
    # MIMIC-EDIT-INSTRUCTION"): where the ids' images are, how 16-bit files are read, demographics.
    layout: Literal["original", "mimic_cxr_jpg", "mimic_cxr_dicom"] = "original"
    images_path: str | None = None  # the MIMIC-CXR(-JPG) folder holding files/ (tree layouts)
    link_roots: tuple[str, ...] = ()  # folders symlinks in past/ and current/ may point into
    bit_depth: Literal["auto", 8, 12, 16] = "auto"  # 16-bit files: auto detects 12-bit content
    mimic_iv: str | None = None  # MIMIC-IV hosp/ folder (patients, admissions .csv.gz): sex, age, race
    max_pixels: int | None = 40_000_000  # larger images are refused (ix2x.images.MAX_PIXELS); null: no limit


@dataclass(frozen=True)
class ComponentSpec:
    """An editor or metric of a suite: its registry name, settings, and for editors an optional
    label that tells two configurations of one editor apart (e.g. a tau sweep)."""

    name: str
    label: str | None = None
    args: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Suite:
    name: str
    description: str = ""
    seed: int = 0
    data: DataSpec = DataSpec()
    editors: tuple[ComponentSpec, ...] = ()
    metrics: tuple[ComponentSpec, ...] = ()
    batch_size: int = 4
    device: str = "cpu"
    save_images: bool = True
    report_images: bool = True  # False for real patient data: reports then carry no images
    report_samples: int = 8  # inputs, targets and masks of this many samples are kept for report grids
    batch_timeout_s: float | None = None  # an editor batch running longer fails (None: no limit)
    # "process": each editor runs in a child process the runner watches, so one that crashes or
    # hangs costs only its own samples (benchmarks/isolation.py); "none": in the runner's process.
    isolation: Literal["process", "none"] = "process"
    # Pixel metrics compare images downscaled so the longer side is at most this (null: native
    # size); classifiers always see their own input size. See ix2x.classifiers.scoring.
    eval_size: int | None = 512
    # torch CPU threads while editing and scoring (null: chosen for the machine when the run starts,
    # then recorded); see ix2x.threads.
    threads: int | None = None
    # Bootstrap interval of means (ix2x.stats): "percentile", or "bca" (bias-corrected and
    # accelerated, better on skewed small samples). Proportions get Clopper-Pearson either way.
    ci: Literal["percentile", "bca"] = "percentile"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Suite file {path} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"Suite file {path} is not valid YAML: {e}") from e
    return suite_from_dict(raw, where=f"suite file {path}")


def suite_from_dict(raw: dict[str, Any], *, where: str = "suite") -> Suite:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a YAML mapping, got {type(raw).__name__}.")
    suite = build(Suite, raw, where=where)
    problems = suite_problems(suite)
    if problems:
        raise ConfigError(f"{where}: {problems[0]}")
    return suite


_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$")


def suite_problems(suite: Suite) -> list[str]:
    """What is wrong with ``suite``'s own values, one sentence each: the one check of a suite, however
    it was built (a suite file, the command line's overrides, ``dataclasses.replace`` in Python).
    Nothing is looked up here; registry names, folders and weight files are :mod:`ix2x.preflight`'s."""
    out = []
    # Labels name folders of the run directory: unique ignoring case, or `Floor` and `floor` would
    # share one folder on a case-insensitive file system (macOS, Windows).
    keys = [e.key for e in suite.editors]
    folded = [k.casefold() for k in keys]
    duplicates = sorted({k for k in keys if folded.count(k.casefold()) > 1})
    if duplicates:
        out.append(f"editor labels must be unique (ignoring case: they name folders), got {duplicates} more "
                   "than once. Give each configuration its own `label:`.")
    labels = [m.key for m in suite.metrics]
    twice = sorted({k for k in labels if labels.count(k) > 1})
    if twice:
        out.append(f"Metric labels must be unique, got {', '.join(twice)} more than once. Give each "
                   "configuration of a metric its own `label:` in the suite.")
    if suite.batch_size < 1:
        out.append(f"`batch_size` must be >= 1, got {suite.batch_size}. Set it in the suite or with `--batch-size`.")
    if suite.batch_timeout_s is not None and not suite.batch_timeout_s > 0:
        out.append(f"`batch_timeout_s` must be > 0 seconds or null, got {suite.batch_timeout_s}.")
    if suite.threads is not None and (not isinstance(suite.threads, int) or suite.threads < 1):
        out.append(f"`threads` must be an integer >= 1 or null (chosen for the machine), got {suite.threads!r}.")
    if suite.eval_size is not None and suite.eval_size < 16:
        out.append(f"`eval_size` must be >= 16 or null (native size), got {suite.eval_size}.")
    if not _DEVICE.match(str(suite.device)):
        out.append(f"`device` must be cpu, cuda, cuda:N or mps, got {suite.device!r}. "
                   "Set it with `--device` or the suite's `device:`.")
    if suite.data.limit is not None and suite.data.limit < 1:
        out.append(f"`limit` must be >= 1, got {suite.data.limit}.")
    return out


def check_suite(suite: Suite) -> None:
    """The check before a suite runs: its name and labels as folder names, at least one editor, then
    the first of :func:`suite_problems`, as a one-line :class:`~ix2x.errors.UserError`."""
    from ix2x.records import check_name

    check_name("The suite `name`", suite.name)
    for what, specs in (("Editor", suite.editors), ("Metric", suite.metrics)):
        for spec in specs:
            check_name(f"{what} label `{spec.key}`", spec.key)
    if not suite.editors:
        raise UserError(f"Suite `{suite.name}` has no editors.")
    problems = suite_problems(suite)
    if problems:
        raise UserError(problems[0])


def with_overrides(suite: Suite, **overrides: Any) -> Suite:
    """A copy of ``suite`` with top-level and ``data`` fields replaced (command-line precedence)."""
    data_fields = {f.name for f in dataclasses.fields(DataSpec)}
    data_over = {k: v for k, v in overrides.items() if k in data_fields and v is not None}
    top = {k: v for k, v in overrides.items() if k not in data_fields and v is not None}
    data = dataclasses.replace(suite.data, **data_over) if data_over else suite.data
    return dataclasses.replace(suite, data=data, **top)
