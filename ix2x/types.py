"""The contracts every editor, metric and dataset speaks.

Images everywhere are ``float32`` tensors of shape ``(1, H, W)`` with values in ``[0, 1]``
(grayscale radiographs). Masks are the same shape, ``float32`` in ``{0, 1}`` (1 = allowed to change),
and guidance maps are ``float32`` in ``[0, 1]``.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import torch

from ix2x.records import HeadlineKey, SummaryRow
from ix2x.stats import mean_aggregates


def check_image(name: str, image: Any, *, allow_batch: bool = False) -> torch.Tensor:
    """Raise a clear error unless ``image`` is a float32 ``(1, H, W)`` tensor in ``[0, 1]``."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(image).__name__}.")
    expected_dims = (3, 4) if allow_batch else (3,)
    if image.dim() not in expected_dims or image.shape[-3] != 1:
        raise ValueError(
            f"`{name}` must have shape (1, H, W) (one grayscale channel), got {tuple(image.shape)}. "
            "Convert RGB radiographs to one channel and add the channel axis first."
        )
    if image.dtype != torch.float32:
        raise TypeError(f"`{name}` must be float32, got {image.dtype}. Use image.float() / 255 for uint8.")
    if image.numel() and (torch.isnan(image).any() or image.min() < 0 or image.max() > 1):
        lo, hi = float(image.min()), float(image.max())
        raise ValueError(f"`{name}` must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}].")
    return image


@dataclass(frozen=True)
class Sample:
    """One held-out edit: the input study, the instruction and what is known about the truth.

    ``image`` is the past study (the input), ``target`` the current study when one exists,
    ``target_aligned`` says whether ``target`` is pixel-aligned with ``image`` (true for phantoms
    without pose jitter, false for real follow-up studies). ``region`` is the mask of where change
    is allowed (the phantom's true change mask, or the instruction's pseudo-mask on real data).
    ``labels`` holds per-finding labels before/after and attributes when known.

    ``ops`` is the instruction's parse, :class:`~ix2x.data.instructions.EditOp` objects
    (:func:`~ix2x.data.instructions.read_ops`), made once by the dataset reader: ``()`` when the
    grammar cannot read the instruction, None when nobody parsed it (a sample made by hand;
    :func:`~ix2x.data.instructions.ops_of_sample` parses it then). Editors get it in their requests,
    metrics read it, and the run writes it into the sample's record (``ops``), where reports read it.
    """

    sample_id: str
    image: torch.Tensor
    instruction: str
    target: torch.Tensor | None = None
    target_aligned: bool = False
    region: torch.Tensor | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)
    patient_id: str | None = None
    split: str = "test"
    ops: tuple["EditOp", ...] | None = None

    def __post_init__(self) -> None:
        if self.ops is not None:
            object.__setattr__(self, "ops", tuple(self.ops))
        check_image("Sample.image", self.image)
        if self.target is not None:
            check_image("Sample.target", self.target)
        if self.region is not None and tuple(self.region.shape) != tuple(self.image.shape):
            raise ValueError(
                f"`Sample.region` must have the image's shape {tuple(self.image.shape)}, "
                f"got {tuple(self.region.shape)}."
            )


@dataclass(frozen=True)
class EditRequest:
    """What an editor sees. Editors never see ground truth, with one declared exception:
    editors whose class sets ``uses_ground_truth = True`` (the ``oracle``) get ``target``.

    ``source_report`` / ``target_report``: the dataset's report text of the input and of the study the
    edit should produce, when the dataset has them (columns of ``instructions.csv``; phantoms always do),
    else None. They are the prompts of report-conditioned editors (RoentGen, DiffEdit, RadEdit) with
    ``prompt: dataset``; an instruction editor ignores them.

    Requests are read-only: return new tensors (``r.image.clone()`` before any in-place operation).
    The runner hands each editor copies of the sample's tensors, so an editor that writes into them
    changes only its copy, never the input its edit is scored against.

    ``ops``: the instruction's parse as the run made it (:class:`~ix2x.data.instructions.EditOp`
    objects, ``()`` when the grammar cannot read it), or None in a request made without one, where
    an editor that needs the ops parses ``instruction`` itself."""

    sample_id: str
    image: torch.Tensor
    instruction: str
    seed: int
    target: torch.Tensor | None = None
    source_report: str | None = None
    target_report: str | None = None
    ops: tuple["EditOp", ...] | None = None


@dataclass(frozen=True)
class EditResult:
    """An edit. ``image`` has the input's shape. ``guidance_map`` in ``[0, 1]`` (RSE's G) and
    ``edit_mask`` in ``{0, 1}`` (where the editor allowed change) are optional; ``info`` carries
    steps, model calls and warnings, and must be JSON-serialisable."""

    image: torch.Tensor
    guidance_map: torch.Tensor | None = None
    edit_mask: torch.Tensor | None = None
    info: Mapping[str, Any] = field(default_factory=dict)


def fill_batch(editor: "Editor", requests: Sequence[EditRequest], size: int) -> list[EditRequest]:
    """``requests`` filled up to ``size`` with copies of the last one, whose results the caller drops
    (unless the editor opts out with ``fill_batches = False``).

    Batched kernels (convolutions, GEMMs) pick their algorithm by batch shape, so an edit's last bits
    depend on how many samples were edited with it, though never on which or in what order. With one
    shape, every edit is the same bytes whatever the order of the data, the number of processes or
    where a run was resumed."""
    requests = list(requests)
    if not requests or not editor.fill_batches:
        return requests
    return requests + [requests[-1]] * (size - len(requests))


@dataclass(frozen=True)
class EmptyConfig:
    """Config of an editor or metric with no settings."""


class Editor(abc.ABC):
    """An image editor. Subclasses set ``Config`` (a frozen dataclass, the only place their
    defaults live) and implement ``edit`` on a batch. Latency is measured by the harness."""

    Config: ClassVar[type] = EmptyConfig
    uses_ground_truth: ClassVar[bool] = False
    # The harness fills a short batch up to the run's batch size with copies of its last request and
    # drops their results (see `fill_batch`). False for editors that pay or write files per request.
    fill_batches: ClassVar[bool] = True
    # False for editors whose edits were made elsewhere (`outputs`): the harness then records no
    # latency for them (the record's `latency_s` is null) instead of timing file reads.
    timed: ClassVar[bool] = True

    def __init__(self, config: Any | None = None) -> None:
        self.config = self.Config() if config is None else config
        if not isinstance(self.config, self.Config):
            raise TypeError(
                f"`config` must be a {self.Config.__qualname__}, got {type(self.config).__name__}."
            )
        self.device = torch.device("cpu")

    @abc.abstractmethod
    def edit(self, requests: Sequence[EditRequest]) -> list[EditResult]:
        """Edit a batch; return one result per request, in order. A batch may hold copies of one
        request (``fill_batches``): edit each as if alone."""

    def to(self, device: str | torch.device) -> "Editor":
        self.device = torch.device(device)
        return self

    @classmethod
    def shared_weights(cls, config: Any) -> str | None:
        """The weights folder this editor loads through :mod:`ix2x.model_pool` when other editors of a
        run may load it too (InstructX2X and its ablations), else None. The runner runs editors that
        share a folder one after another (in one process when editors are isolated), so the folder is
        loaded once per run. Reads no weights."""
        return None

    def problems(self, device: str = "cpu") -> list[str]:
        """What would stop this editor from running on ``device`` (the run's placement): missing
        weights files, too little device memory... Checked without loading any model. Each problem
        is one line naming the file, where it goes and the command that fetches it. ``ix2x validate``
        prints them; ``ix2x run`` refuses to start while there are any."""
        return []


class Metric(abc.ABC):
    """A metric: per-sample values from (sample, edit) pairs, then an aggregate over the set.

    ``higher_is_better`` maps each reported value key to its direction; keys absent from it are
    per-sample raw data that ``aggregate`` uses (e.g. probabilities for a set-level AUROC).
    ``requires`` names what a sample or the run must provide: ``"region"``, ``"target"``,
    ``"aligned_target"``, ``"labels"``, ``"guidance"``.
    A value that cannot be computed is ``float("nan")`` and the reason goes under ``"nan_reason"``.
    """

    Config: ClassVar[type] = EmptyConfig
    higher_is_better: ClassVar[Mapping[str, bool]] = {}
    requires: ClassVar[frozenset[str]] = frozenset()
    # The keys the report's leaderboard shows, in order, with their glossary entries (run.json
    # records ``describe()``, so the report needs no list of metrics); ``glossary`` says what the
    # metric measures as a whole.
    headline: ClassVar[tuple[HeadlineKey, ...]] = ()
    glossary: ClassVar[str] = ""
    # Keys whose per-sample values are 0/1 outcomes (an agreement, a flip): their mean is a
    # proportion and gets an exact binomial interval, which a bootstrap of all-equal outcomes lacks.
    proportions: ClassVar[frozenset[str]] = frozenset()
    # True for metrics that edit again (they also derive from :class:`EditsAgain`, the capability
    # the runner binds the editor through). Such metrics cannot be rescored from cache.
    uses_editor: ClassVar[bool] = False
    # Per-run state: the run's :class:`~ix2x.classifiers.scoring.Scoring` (classifiers and networks
    # built once per run, prediction and feature caches shared by all metrics, the run's evaluation
    # size), given by the runner through :meth:`use_scoring` before the first ``compute``; None
    # outside a run (``ix2x.metrics._shared.scoring(self)`` then makes a private one).
    scoring: Any = None

    def __init__(self, config: Any | None = None) -> None:
        self.config = self.Config() if config is None else config
        if not isinstance(self.config, self.Config):
            raise TypeError(
                f"`config` must be a {self.Config.__qualname__}, got {type(self.config).__name__}."
            )
        self.device = torch.device("cpu")

    def problems(self, device: str = "cpu") -> list[str]:
        """What would stop this metric from running on ``device`` (missing classifier or backbone
        weights...), one line each, checked without loading any model; see :meth:`Editor.problems`."""
        return []

    def to(self, device: str | torch.device) -> "Metric":
        self.device = torch.device(device)
        return self

    def use_scoring(self, scoring: Any) -> None:
        """Take the run's shared scoring state (:attr:`scoring`); the runner calls this once per run
        and process, after :meth:`to`. Override to prepare per-run work, calling ``super()``."""
        self.scoring = scoring

    @abc.abstractmethod
    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        """Per-sample values, one dict per (sample, result) pair, JSON-serialisable."""

    def aggregate(self, values: Sequence[Mapping[str, Any]], *, seed: int = 0,
                  clusters: Sequence[str] | None = None) -> list[SummaryRow]:
        """Mean of each key in ``higher_is_better`` with n and a 95 % interval (see ix2x.stats).
        Metrics with set-level statistics (AUROC, correlations) override this."""
        return mean_aggregates(self.name, values, self.higher_is_better, seed=seed, clusters=clusters,
                               proportions=self.proportions)

    @property
    def name(self) -> str:
        return getattr(type(self), "registry_name", type(self).__name__)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What the metric reports, JSON-serialisable: its name, the direction of every key, the
        headline keys with label, direction, unit, glossary text and precision, and its own
        glossary text. Recorded in run.json; the report reads it from there."""
        return {
            "name": getattr(cls, "registry_name", cls.__name__),
            "higher_is_better": {str(k): bool(v) for k, v in dict(cls.higher_is_better).items()},
            "headline": [dataclasses.asdict(h) for h in cls.headline],
            "glossary": cls.glossary,
        }


class EditorOutputError(ValueError):
    """An editor's result breaks the :class:`EditResult` contract (recorded as that sample's failure)."""


def _as_map(name: str, value: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """A float32 CPU tensor of ``shape`` in [0, 1] from a tensor or NumPy array of that shape (or of
    its (H, W)), or an :class:`EditorOutputError` saying what is wrong."""
    import numpy as np

    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise EditorOutputError(f"`{name}` must be a torch.Tensor (or NumPy array), got {type(value).__name__}.")
    if value.dtype.is_complex or not (value.dtype.is_floating_point or value.dtype == torch.bool):
        raise EditorOutputError(f"`{name}` must be a float tensor with values in [0, 1], got {value.dtype}.")
    value = value.detach().to("cpu", torch.float32)
    if tuple(value.shape) == tuple(shape[-2:]):
        value = value[None]
    if tuple(value.shape) != tuple(shape):
        raise EditorOutputError(f"`{name}` must have the input's shape {tuple(shape)}, got {tuple(value.shape)}.")
    if value.numel():
        if not torch.isfinite(value).all():
            n = int((~torch.isfinite(value)).sum())
            raise EditorOutputError(f"`{name}` must be finite, got {n} NaN/inf value(s).")
        lo, hi = float(value.min()), float(value.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            raise EditorOutputError(f"`{name}` must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}].")
        value = value.clamp(0, 1)  # float rounding just past the bounds
    return value.contiguous()


def validate_result(result: Any, shape: tuple[int, ...]) -> EditResult:
    """``result`` checked at the harness boundary and normalised: image, guidance map and edit mask
    become float32 CPU tensors of the input's ``shape`` in [0, 1] (NumPy arrays and (H, W) maps are
    accepted), all finite; ``info`` a JSON-serialisable mapping (the error names the bad key)."""
    from ix2x.records import unserialisable_key

    if not isinstance(result, EditResult):
        raise EditorOutputError(f"an editor must return EditResult objects, got {type(result).__name__}.")
    image = _as_map("EditResult.image", result.image, shape)
    guidance = None if result.guidance_map is None else _as_map("EditResult.guidance_map",
                                                                 result.guidance_map, shape)
    mask = None if result.edit_mask is None else _as_map("EditResult.edit_mask", result.edit_mask, shape)
    info = result.info if result.info is not None else {}
    if not isinstance(info, Mapping):
        raise EditorOutputError(f"`EditResult.info` must be a mapping, got {type(info).__name__}.")
    bad = unserialisable_key(info, "EditResult.info")
    if bad:
        raise EditorOutputError(f"`EditResult.info` must be JSON-serialisable: {bad} is not. "
                                "Convert tensors and arrays with .tolist() or .item().")
    return EditResult(image=image, guidance_map=guidance, edit_mask=mask, info=dict(info))


class EditsAgain:
    """The capability of a metric that edits again (the axiomatic properties): mix it into a
    :class:`Metric` subclass. The runner binds the editor whose edits are scored next with
    :meth:`bind_editor`; metrics without this capability never hold an editor."""

    uses_editor: ClassVar[bool] = True
    editor: "Editor | None" = None
    seed: int = 0
    batch_size: int = 1

    def bind_editor(self, editor: "Editor", seed: int, batch_size: int = 1) -> None:
        """The editor whose edits are scored next, the run's global seed, and the batch size its
        edits must be made at (see :func:`fill_batch`)."""
        self.editor, self.seed, self.batch_size = editor, seed, batch_size

    def unbind_editor(self) -> None:
        """Drop the editor, so its weights can be freed before the next editor loads."""
        self.editor = None


def __getattr__(name: str):
    # `Aggregate` was merged into SummaryRow (same positional fields, plus a trailing `editor`), so
    # metric plugins that build `Aggregate(...)` rows keep working.
    if name == "Aggregate":
        return SummaryRow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
