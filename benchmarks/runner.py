"""The suite runner: editors over samples, metrics over edits, records into a run directory.

Order of work is fixed (editor by editor, samples in dataset order, in batches), every batch is
appended and fsynced before the next starts, and per-sample seeds depend only on
(suite seed, sample_id). So a killed run loses at most the batch in flight, and ``resume`` finishes
with the same records as an uninterrupted run (timings aside).
Editors and metrics are reached by registry name only. The jobs live in their own modules:
:mod:`benchmarks.rundir` (the run directory's lifecycle and merge), :mod:`benchmarks.editing`
(timed editing with retry and fault containment), :mod:`benchmarks.scoring` (scoring and
aggregation); this module puts them in order.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ix2x.benchmarks import editing, rundir, scoring
from ix2x.benchmarks.shard import Shard, barrier
from ix2x import records, registry
from ix2x.configs import build
from ix2x.errors import UserError
from ix2x.provenance import device_info, git_state, package_versions
from ix2x.records import RunMeta
from ix2x.suite import ComponentSpec, Suite
from ix2x.threads import default_threads, torch_threads
from ix2x.types import Sample

# Kept under their old names for callers of this module.
load_run_suite = rundir.load_run_suite
merge = rundir.merge
_cached_result = scoring.cached_result
REPORT_INPUTS = dict(records.Layout.report_inputs)


@dataclass
class Component:
    spec: ComponentSpec
    cls: type
    config: Any

    @property
    def key(self) -> str:
        return self.spec.key


@dataclass
class RunOutcome:
    run_dir: Path
    n_records: int
    n_failed: dict[str, int] = field(default_factory=dict)
    n_metric_errors: int = 0
    n_per_editor: dict[str, int] = field(default_factory=dict)
    first_error: dict[str, str] = field(default_factory=dict)  # editor -> its first failure's cause

    def n_records_of(self, editor: str) -> int:
        return self.n_per_editor.get(editor, 0)

    @property
    def ok(self) -> bool:
        return not any(self.n_failed.values()) and self.n_metric_errors == 0

    @property
    def failed_editors(self) -> list[str]:
        return [k for k, n in self.n_failed.items() if n]


class DiskFull(UserError):
    pass


def resolve(suite: Suite) -> tuple[list[Component], list[Component]]:
    """Look up every editor and metric and check its settings and labels, before any data or
    model loads."""
    records.check_name("The suite `name`", suite.name)
    editors = []
    for spec in suite.editors:
        records.check_name(f"Editor label `{spec.key}`", spec.key)
        cls = registry.load("editor", spec.name)
        editors.append(Component(spec, cls, build(cls.Config, spec.args, where=f"editor `{spec.key}`")))
    metrics = []
    for spec in suite.metrics:
        records.check_name(f"Metric label `{spec.key}`", spec.key)
        cls = registry.load("metric", spec.name)
        metrics.append(Component(spec, cls, build(cls.Config, spec.args, where=f"metric `{spec.key}`")))
    labels = [m.key for m in metrics]
    twice = sorted({k for k in labels if labels.count(k) > 1})
    if twice:
        raise UserError(f"Metric labels must be unique, got {', '.join(twice)} more than once. Give each "
                        "configuration of a metric its own `label:` in the suite.")
    if not editors:
        raise UserError(f"Suite `{suite.name}` has no editors.")
    return editors, metrics


def _components_meta(components: Sequence[Component], *, describe: bool = False) -> dict[str, Any]:
    out = {}
    for c in components:
        entry: dict[str, Any] = {"name": c.spec.name, "config": dataclasses.asdict(c.config)}
        if describe and callable(getattr(c.cls, "describe", None)):
            try:  # what the metric says its keys mean (the reports build glossary and leaderboard)
                entry["describe"] = c.cls(c.config).describe()
            except Exception as e:  # a metric that cannot describe itself still runs
                entry["describe_error"] = editing.format_error(e)
        out[c.key] = entry
    return out


def start_run(suite: Suite, out_root: Path, *, argv: Sequence[str] = (), parent: Path | None = None) -> Path:
    """Create the run directory and its ``run.json`` (status "running")."""
    from ix2x.data.sources import check_data

    editors, metrics = resolve(suite)
    if parent is None:
        check_data(suite.data)
    if suite.threads is None:  # chosen here, once, and recorded: a resume edits with the same count
        suite = dataclasses.replace(suite, threads=default_threads())
    run_dir = rundir.new_run_dir(out_root, suite.name)
    # A failed start (a full disk...) is one line and leaves nothing behind.
    with _disk_full_is_one_line(run_dir), rundir.discard_if_unstarted(run_dir):
        _write_start_meta(run_dir, suite, editors, metrics, argv, parent)
    return run_dir


def _write_start_meta(run_dir: Path, suite: Suite, editors: list[Component], metrics: list[Component],
                      argv: Sequence[str], parent: Path | None) -> None:
    meta = RunMeta(schema_version=records.SCHEMA_VERSION, suite=suite.as_dict(),
                   editors=_components_meta(editors), metrics=_components_meta(metrics, describe=True),
                   seed=suite.seed, status="running", created=rundir.now(),
                   parent=str(parent) if parent else None,
                   extra={"packages": package_versions(), "git": git_state(), "device": device_info(suite.device),
                          "argv": list(argv)})
    rundir.write_meta(run_dir, meta)


def prepare_data(run_dir: Path, *, progress: bool = True) -> None:
    """Make the run's data available (phantoms are generated and cached on first use)."""
    from ix2x.data.sources import data_root

    data_root(load_run_suite(run_dir).data, progress=progress)


def _sample_id(dataset: Sequence[Sample], i: int) -> str:
    ids = getattr(dataset, "sample_ids", None)  # lazy datasets know ids without loading images
    return ids[i] if ids is not None else dataset[i].sample_id


def _open_data(suite: Suite, progress: bool) -> tuple[Sequence[Sample], dict[str, Any]]:
    from ix2x.data.sources import data_root, open_dataset

    return open_dataset(suite.data, progress=progress), rundir.tree_fingerprint(data_root(suite.data))


def execute(run_dir: Path, dataset: Sequence[Sample] | None = None, *, progress: bool = True,
            on_batch: Callable[[int], None] | None = None, shard: Shard = Shard(),
            allow_changed_data: bool = False) -> RunOutcome:
    """Run (or continue) the suite recorded in ``run_dir``, then write ``summary.csv``.

    ``dataset`` overrides the suite's data (tests pass in-memory samples). ``on_batch`` is called
    after each batch is on disk with the number of records written so far (tests use it to kill).
    With several ``shard`` processes, each edits its share and rank 0 merges and aggregates.
    """
    suite = load_run_suite(run_dir)
    editors, metrics = resolve(suite)
    with rundir.locked(run_dir, enabled=shard.rank == 0), _disk_full_is_one_line(run_dir):
        tree = None
        if dataset is None:
            dataset, tree = _open_data(suite, progress and shard.rank == 0)
        ids = [_sample_id(dataset, i) for i in range(len(dataset))]
        layout = rundir.read_meta(run_dir).layout
        rundir.check_sample_ids(ids, layout)
        if shard.rank == 0:  # set damage aside and check the data before any rank reads what is done
            _check_records_and_data(run_dir, dataset, ids, tree, allow_changed_data)
        barrier(shard)
        with torch_threads(suite.threads):
            _edit_and_score(run_dir, suite, editors, metrics, dataset, ids, layout, shard, progress, on_batch)
        barrier(shard)
        if shard.rank == 0:
            merge(run_dir, [e.key for e in editors], ids)
            outcome = finalize(run_dir)
    barrier(shard)
    if shard.rank != 0:
        meta = rundir.read_meta(run_dir)
        outcome = RunOutcome(run_dir, meta.n_records or 0, meta.n_failed or {}, meta.n_metric_errors or 0,
                             meta.n_per_editor or {})
    return outcome


@contextmanager
def _disk_full_is_one_line(run_dir: Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        if records.disk_full(e):
            raise DiskFull(f"No space left on the device of {run_dir} ({e.strerror}: {e.filename or ''}); "
                           f"the batch in flight was not recorded. Free space, then "
                           f"`ix2x run --resume {run_dir}`.") from None
        raise


def _check_records_and_data(run_dir: Path, dataset: Sequence[Sample], ids: Sequence[str],
                            tree: dict[str, Any] | None, allow_changed: bool) -> None:
    meta = rundir.read_meta(run_dir)
    done = rundir.all_records(run_dir, version=meta.schema_version, repair=True)
    meta = rundir.check_data(run_dir, meta, dataset, ids, done, tree, allow_changed=allow_changed)
    rundir.write_meta(run_dir, meta)


def _edit_and_score(run_dir: Path, suite: Suite, editors: list[Component], metrics: list[Component],
                    dataset: Sequence[Sample], ids: list[str], layout: records.Layout, shard: Shard,
                    progress: bool, on_batch: Callable[[int], None] | None) -> None:
    """Every editor over its pending samples, batch by batch: edit, score, record."""
    from tqdm.auto import tqdm

    version = rundir.read_meta(run_dir).schema_version
    own_file = rundir.own_records_file(run_dir, shard.rank, shard.distributed)
    done = {r.key for r in rundir.all_records(run_dir, version=version)}
    metric_objs = [_placed(c.cls(c.config), suite.device) for c in metrics]
    state = _with_scoring(metric_objs, suite)
    pending = {e.key: [i for i, sid in enumerate(ids) if shard.owns(i) and (e.key, sid) not in done]
               for e in editors}
    written = len(done)
    if suite.report_images:
        rundir.save_report_inputs(run_dir, layout, dataset,
                                  [i for i in range(min(suite.report_samples, len(ids))) if shard.owns(i)])
    hashes: dict[int, str] = {}

    def load(indices: Sequence[int]) -> tuple[list[Sample], list[str]]:
        batch = [dataset[i] for i in indices]
        for i, s in zip(indices, batch):
            if i not in hashes:  # setdefault would hash again every time (52 ms per 3,000 px sample)
                hashes[i] = rundir.sample_hash(s)
        return batch, [hashes[i] for i in indices]

    with records.RecordWriter(own_file) as writer, \
            tqdm(total=sum(len(v) for v in pending.values()), disable=not progress, unit="edit",
                 dynamic_ncols=True, position=shard.rank) as bar:
        for comp in editors:
            todo = pending[comp.key]
            if not todo:
                continue
            bar.set_description(comp.key if not shard.distributed else f"[rank {shard.rank}] {comp.key}")
            editor, stage, error = editing.build_editor(comp.cls, comp.config, suite.device)
            first = None  # the first batch's edits when the warm-up made them (it is not edited twice)
            if editor is not None:
                _bind(metric_objs, editor, suite)
                first = editing.warm_up(editor, load(todo[:suite.batch_size])[0], suite,
                                        keep=len(todo) > suite.batch_size)
            for start in range(0, len(todo), suite.batch_size):
                batch, batch_hashes = load(todo[start:start + suite.batch_size])
                if editor is None:  # the editor never started: each of its samples fails with why
                    recs = scoring.failed_records(comp.key, batch, stage, error, batch_hashes)
                else:
                    edited = first if start == 0 and first is not None else editing.edit_batch(editor, batch, suite)
                    recs = scoring.batch_records(comp.key, batch, edited, list(zip([m.key for m in metrics],
                                                 metric_objs)), batch_hashes, run_dir=run_dir, layout=layout,
                                                 save_images=suite.save_images)
                writer.write_batch(recs)
                written += len(recs)
                bar.update(len(batch))
                if on_batch is not None:
                    on_batch(written)
            _bind(metric_objs, None, suite)  # no metric keeps this editor's weights alive past it
            del editor
    if shard.rank == 0:
        _record_weights(run_dir, state)


def _placed(metric: Any, device: str) -> Any:
    # `to()` returns the metric by contract, but a plugin returning None must not lose it.
    placed = metric.to(device)
    return metric if placed is None else placed


def _with_scoring(metric_objs: list[Any], suite: Suite) -> Any:
    """Give the metrics one per-run scoring state (models built once, prediction and feature
    caches, the evaluation size: ix2x.classifiers.scoring) and return it."""
    from ix2x.classifiers.scoring import Scoring

    state = Scoring(suite.device, eval_size=suite.eval_size, batch_size=suite.batch_size)
    for metric in metric_objs:
        metric.scoring = state
    return state


def _record_weights(run_dir: Path, state: Any) -> None:
    """{weights file: SHA-256} of every model the metrics loaded, under run.json's "weights"."""
    files = state.weight_files()
    if files:
        meta = rundir.read_meta(run_dir)
        meta.extra["weights"] = {**meta.extra.get("weights", {}), **files}
        rundir.write_meta(run_dir, meta)


def _bind(metric_objs: Sequence[Any], editor: Any, suite: Suite) -> None:
    """Hand ``editor`` (None: take it back) to the metrics that edit again."""
    for metric in metric_objs:
        if not getattr(metric, "uses_editor", False):
            continue
        if not callable(getattr(metric, "bind_editor", None)):
            raise UserError(f"Metric {type(metric).__name__} sets `uses_editor` but cannot be given an editor: "
                            "derive it from `ix2x.types.EditsAgain` (the capability that binds one).")
        if editor is None:
            metric.unbind_editor()
        else:
            metric.bind_editor(editor, suite.seed, suite.batch_size)


def finalize(run_dir: Path) -> RunOutcome:
    """Aggregate ``samples.jsonl`` into ``summary.csv`` and mark the run complete."""
    suite = load_run_suite(run_dir)
    editors, metrics = resolve(suite)
    meta = rundir.read_meta(run_dir)
    recs = records.read_sample_records(run_dir / records.SAMPLES_FILE, version=meta.schema_version)
    rows, counts = scoring.summarise(meta, [e.key for e in editors], [(c.key, c.cls(c.config)) for c in metrics],
                                     recs, suite.seed)
    records.write_summary(run_dir / records.SUMMARY_FILE, rows)
    meta = dataclasses.replace(meta, status="complete", finished=rundir.now(), **counts)
    rundir.write_meta(run_dir, meta)
    first_error: dict[str, str] = {}
    for r in recs:
        if not r.ok and r.error:
            first_error.setdefault(r.editor, r.error)
    return RunOutcome(run_dir, counts["n_records"], counts["n_failed"], counts["n_metric_errors"],
                      counts["n_per_editor"], first_error)


def rescore(run_dir: Path, metric_specs: Sequence[ComponentSpec], dataset: Sequence[Sample] | None = None,
            *, progress: bool = True, out_root: Path | None = None) -> RunOutcome:
    """Recompute ``metric_specs`` from the edited images cached in ``run_dir`` (no editing) into a
    new run directory that names ``run_dir`` as its parent (beside it, or under ``out_root``);
    ``run_dir`` is only read. Records keep every other value; the new run is aggregated."""
    from tqdm.auto import tqdm

    parent = records.RunDir.open(run_dir)
    if parent.run.status != "complete":
        raise UserError(f"{run_dir} is not complete (status {parent.run.status!r}); finish it with "
                        f"`ix2x run --resume {run_dir}` before rescoring it.")
    suite = load_run_suite(run_dir)
    keys = {s.key for s in metric_specs}
    new_suite = dataclasses.replace(suite, metrics=tuple(
        [m for m in suite.metrics if m.key not in keys] + list(metric_specs)))
    _, metrics = resolve(new_suite)
    metrics = [c for c in metrics if c.key in keys]
    needs_editor = [c.key for c in metrics if c.cls.uses_editor]
    if needs_editor:
        raise UserError(f"{', '.join(needs_editor)} edit again and cannot be computed from cached edits; "
                        "run the suite with them instead.")
    from ix2x import preflight

    # What `run` checks before it starts (weight files, device), so a missing backbone is one list,
    # not a new run directory full of errors.
    problems = preflight.device_problems(suite.device) + preflight.component_problems([], metrics, suite.device)
    if problems:
        from ix2x.errors import MissingWeightsError

        raise MissingWeightsError(f"{len(problems)} problem(s) stop this rescore (`ix2x validate` lists them "
                                  "too):\n  " + "\n  ".join(problems))
    recs = parent.sample_records()
    missing = [r for r in recs if r.ok and (not r.image or not records.inside(run_dir, r.image).is_file())]
    if missing:
        raise UserError(f"{len(missing)} record(s) of {run_dir} have no cached edit image (first: "
                        f"{missing[0].editor}/{missing[0].sample_id}); the run was made with "
                        "save_images: false, so it cannot be rescored without editing again.")
    tree = None
    if dataset is None:
        dataset, tree = _open_data(suite, progress)
    index = {_sample_id(dataset, i): i for i in range(len(dataset))}
    gone = sorted({r.sample_id for r in recs if r.ok and r.sample_id not in index})
    if gone:
        raise UserError(f"{len(gone)} sample(s) of {run_dir} are not in its data any more (first: {gone[0]!r}); "
                        "rescore needs the data the run was made from.")
    # Old edits scored against changed inputs would be wrong numbers with a clean record: refuse,
    # as a resume does (the same check: file fingerprint, else each sample's hash).
    try:
        checked = rundir.check_data(run_dir, dataclasses.replace(parent.run), dataset, list(index),
                                    [r for r in recs if r.ok], tree, allow_changed=False)
    except rundir.DataChanged as e:
        raise UserError(str(e).split(" Restore the data")[0] + ". Restore the data the run was made from "
                        "to rescore it (its edits belong to those inputs).") from None
    root = Path(out_root) if out_root is not None else Path(run_dir).resolve().parent.parent
    new_dir = start_run(new_suite, root, argv=["rescore", str(run_dir)], parent=Path(run_dir).resolve())
    try:
        rundir.copy_images(parent, recs, new_dir)
        objs = [_placed(c.cls(c.config), suite.device) for c in metrics]
        state = _with_scoring(objs, suite)
        todo = [i for i, r in enumerate(recs) if r.ok]
        values: dict[int, dict[str, Any]] = {}
        for start in tqdm(range(0, len(todo), suite.batch_size), disable=not progress, unit="batch"):
            chunk = todo[start:start + suite.batch_size]
            samples = [dataset[index[recs[i].sample_id]] for i in chunk]
            results = [scoring.cached_result(Path(run_dir), recs[i]) for i in chunk]
            for comp, metric in zip(metrics, objs):
                for i, v in zip(chunk, scoring.compute_isolated(metric, list(zip(samples, results)))):
                    values.setdefault(i, {})[comp.key] = v
        out = [dataclasses.replace(r, metrics={**r.metrics, **values.get(i, {})}) for i, r in enumerate(recs)]
        with records.RecordWriter(new_dir / records.SAMPLES_FILE) as w:
            w.write_batch(out)
        meta = rundir.read_meta(new_dir)
        meta.data_fingerprint = checked.data_fingerprint
        meta.extra["rescored_metrics"] = sorted(keys)
        meta.extra["weights"] = {**parent.run.extra.get("weights", {}), **state.weight_files()}
        rundir.write_meta(new_dir, meta)
        return finalize(new_dir)
    except BaseException:
        import shutil

        shutil.rmtree(new_dir, ignore_errors=True)
        raise
