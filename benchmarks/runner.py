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

from ix2x.benchmarks import array_shard, editing, isolation, rundir, sample_cache, scoring
from ix2x.benchmarks.shard import Shard, barrier
from ix2x import records, registry
from ix2x.configs import build
from ix2x.errors import UserError
from ix2x.provenance import device_info, git_state, package_versions
from ix2x.records import RunMeta
from ix2x.stats import ci_method, describe_intervals
from ix2x.suite import ComponentSpec, Suite, check_suite
from ix2x.threads import default_threads, torch_threads
from ix2x.benchmarks.metric_objects import bind as _bind, placed as _placed, with_scoring as _with_scoring
from ix2x.types import Sample


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
    """What a run did (``run_suite``, ``resume_run``, :func:`execute`, :func:`rescore`).

    ``run_dir``: the run directory (``samples.jsonl``, ``summary.csv``, ``run.json``).
    ``n_records``: records written, one per (editor, sample). ``n_failed``: editor label -> samples
    it failed on (0 for an editor that never failed). ``n_per_editor``: editor label -> records.
    ``n_metric_errors``: metric values that could not be computed (``error`` under ``metrics``).
    ``first_error``: editor label -> the cause of its first failure. ``report``: the HTML report when
    one was written; ``report_error``: why it could not be (the records and summary stand without it).
``inventory``: for edits scored from folders, what each folder lacked and held beyond the samples.
    ``ok``: every editor, every metric value and the report succeeded.
    """

    run_dir: Path
    n_records: int
    n_failed: dict[str, int] = field(default_factory=dict)
    n_metric_errors: int = 0
    n_per_editor: dict[str, int] = field(default_factory=dict)
    first_error: dict[str, str] = field(default_factory=dict)  # editor -> its first failure's cause
    report: Path | None = None
    report_error: str | None = None
    inventory: dict[str, Any] = field(default_factory=dict)  # `outputs` editors: missing samples, extra files
    notes: list[str] = field(default_factory=list)  # what a resume did that the user should know

    def n_records_of(self, editor: str) -> int:
        return self.n_per_editor.get(editor, 0)

    @property
    def ok(self) -> bool:
        return not any(self.n_failed.values()) and self.n_metric_errors == 0 and self.report_error is None

    @property
    def failed_editors(self) -> list[str]:
        return [k for k, n in self.n_failed.items() if n]

    def problems(self) -> list[str]:
        """What went wrong, one line each (empty when ``ok``): what ``ix2x run`` prints as FAILED."""
        out = []
        if self.report_error:
            out.append(f"the report could not be written ({self.report_error}); records and summary are "
                       f"complete, retry with `ix2x report {self.run_dir}`")
        for editor, n in self.n_failed.items():
            if n and n == self.n_records_of(editor):
                out.append(f"editor `{editor}` failed on EVERY sample ({n}): "
                           f"{self.first_error.get(editor, 'see `error` in samples.jsonl')}")
            elif n:
                out.append(f"editor `{editor}` failed on {n} sample(s); see `error` in samples.jsonl")
        if self.failed_editors:
            out.append(f"{len(self.failed_editors)} of {len(self.n_failed)} editor(s) failed on some or all "
                       f"samples: {', '.join(self.failed_editors)}")
        if self.n_metric_errors:
            out.append(f"{self.n_metric_errors} metric value(s) could not be computed; see `error` under "
                       "`metrics` in samples.jsonl")
        return out


class DiskFull(UserError):
    pass


def resolve(suite: Suite) -> tuple[list[Component], list[Component]]:
    """Look up every editor and metric and check its settings and labels, before any data or
    model loads."""
    check_suite(suite)  # names, labels, values: the same check as before torch is imported
    editors = []
    for spec in suite.editors:
        cls = registry.load("editor", spec.name)
        editors.append(Component(spec, cls, build(cls.Config, spec.args, where=f"editor `{spec.key}`")))
    metrics = []
    for spec in suite.metrics:
        cls = registry.load("metric", spec.name)
        metrics.append(Component(spec, cls, build(cls.Config, spec.args, where=f"metric `{spec.key}`")))
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
        with torch_threads(suite.threads):  # run.json's device info records the run's count
            _write_start_meta(run_dir, suite, editors, metrics, argv, parent)
    return run_dir


def _write_start_meta(run_dir: Path, suite: Suite, editors: list[Component], metrics: list[Component],
                      argv: Sequence[str], parent: Path | None) -> None:
    meta = RunMeta(schema_version=records.SCHEMA_VERSION, suite=suite.as_dict(),
                   editors=_components_meta(editors), metrics=_components_meta(metrics, describe=True),
                   seed=suite.seed, status="running", created=rundir.now(),
                   parent=str(parent) if parent else None, packages=package_versions(), git=git_state(),
                   device=device_info(suite.device), argv=list(argv))
    rundir.write_meta(run_dir, meta)


def prepare_data(run_dir: Path, *, progress: bool = True) -> None:
    """Make the run's data available (phantoms are generated and cached on first use)."""
    from ix2x.data.sources import data_root

    data_root(rundir.load_run_suite(run_dir).data, progress=progress)


def _sample_id(dataset: Sequence[Sample], i: int) -> str:
    ids = getattr(dataset, "sample_ids", None)  # lazy datasets know ids without loading images
    return ids[i] if ids is not None else dataset[i].sample_id


def _open_data(suite: Suite, progress: bool) -> tuple[Sequence[Sample], dict[str, Any]]:
    from ix2x.data.sources import data_root, open_dataset

    from ix2x.benchmarks.fingerprint import data_fingerprint

    return open_dataset(suite.data, progress=progress), data_fingerprint(suite.data, data_root(suite.data))


def execute(run_dir: Path, dataset: Sequence[Sample] | None = None, *, progress: bool = True,
            on_batch: Callable[[int], None] | None = None, shard: Shard = Shard(),
            allow_changed_data: bool = False, skip_crashed: bool = False) -> RunOutcome:
    """Run (or continue) the suite recorded in ``run_dir``, then write ``summary.csv``.

    ``dataset`` overrides the suite's data (tests pass in-memory samples). ``on_batch`` is called
    after each batch is on disk with the number of records written so far (tests use it to kill).
    With several ``shard`` processes, each edits its share and rank 0 merges and aggregates.
    An editor whose process crashed is retried once on resume, never with ``skip_crashed``.
    """
    suite = rundir.load_run_suite(run_dir)
    editors, metrics = resolve(suite)
    with rundir.locked(run_dir, enabled=shard.rank == 0), _disk_full_is_one_line(run_dir):
        tree = None
        dataset_given = dataset is not None
        if dataset is None:
            dataset, tree = _open_data(suite, progress and shard.rank == 0)
        # an array shard (`--shard I/N`) runs its share only: ix2x.benchmarks.array_shard
        dataset = array_shard.select(dataset, rundir.read_meta(run_dir).extra.get("shard"))
        ids = [_sample_id(dataset, i) for i in range(len(dataset))]
        layout = rundir.read_meta(run_dir).layout
        rundir.check_sample_ids(ids, layout)
        notes: list[str] = []
        if shard.rank == 0:  # set damage aside and check the data before any rank reads what is done
            notes = _check_records_and_data(run_dir, dataset, ids, tree, allow_changed_data, skip_crashed)
        barrier(shard)
        with torch_threads(suite.threads):  # editor children take this count too (isolation)
            _edit_and_score(run_dir, suite, editors, metrics, dataset, ids, layout, shard, progress, on_batch,
                            dataset_given)
        barrier(shard)
        if shard.rank == 0:
            rundir.merge(run_dir, [e.key for e in editors], ids)
            outcome = finalize(run_dir)
            outcome.notes = notes
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
            # Before its first record a new run's directory is removed (rundir.discard_if_unstarted):
            # then there is nothing to resume.
            started = any(records.scan_records(p)[0] or records.scan_records(p)[1]
                          for p in rundir.record_files(run_dir))
            then = f"`ix2x run --resume {run_dir}`" if started else \
                "run the same command again (no record was written, so nothing is kept to resume)"
            raise DiskFull(f"No space left on the device of {run_dir} ({e.strerror}: {e.filename or ''}); "
                           f"the batch in flight was not recorded. Free space, then {then}.") from None
        raise


def _check_records_and_data(run_dir: Path, dataset: Sequence[Sample], ids: Sequence[str],
                            tree: dict[str, Any] | None, allow_changed: bool, skip_crashed: bool) -> list[str]:
    meta = rundir.read_meta(run_dir)
    done = rundir.all_records(run_dir, version=meta.schema_version, repair=True)
    meta = rundir.check_data(run_dir, meta, dataset, ids, done, tree, allow_changed=allow_changed)
    notes = isolation.retry_crashed(run_dir, meta, rundir.all_records(run_dir, version=meta.schema_version),
                                    skip=skip_crashed)
    if done:
        notes += _thread_change(meta)
    rundir.write_meta(run_dir, meta)
    return notes


def _thread_change(meta: RunMeta) -> list[str]:
    """The torch thread count changes the bytes of an edit (by up to about 2/65535 per pixel). A run
    records its count (the suite's ``threads``, ix2x.threads) and resumes with it, so there is
    nothing to say; a run recorded before that setting edits with the process's count, and a resume
    under another count than the run's start says so and records it."""
    import torch

    if (meta.suite or {}).get("threads") is not None:
        return []
    started = (meta.device or {}).get("torch_threads")
    now = torch.get_num_threads()
    if not started or started == now:
        return []
    meta.extra.setdefault("thread_changes", []).append({"at": rundir.now(), "from": started, "to": now})
    return [f"this run started with {started} torch thread(s) and resumes with {now}: the samples edited now may "
            "differ from an uninterrupted run's in the last bits (about 2/65535 per pixel). Resume with "
            f"OMP_NUM_THREADS={started} for the same bytes."]


def _edit_and_score(run_dir: Path, suite: Suite, editors: list[Component], metrics: list[Component],
                    dataset: Sequence[Sample], ids: list[str], layout: records.Layout, shard: Shard,
                    progress: bool, on_batch: Callable[[int], None] | None, dataset_given: bool) -> None:
    """Every editor over its pending samples, batch by batch: edit, score, record; each editor in
    its own watched process (:mod:`benchmarks.isolation`) unless the suite says ``isolation: none``."""
    from tqdm.auto import tqdm

    version = rundir.read_meta(run_dir).schema_version
    own_file = rundir.own_records_file(run_dir, shard.rank, shard.distributed)
    done = {r.key for r in rundir.all_records(run_dir, version=version)}
    metric_objs = [_placed(c.cls(c.config), suite.device) for c in metrics]
    state = _with_scoring(metric_objs, suite)
    pending = {e.key: [i for i, sid in enumerate(ids) if shard.owns(i) and (e.key, sid) not in done]
               for e in editors}
    written = len(done)
    weights: dict[str, str] = {}
    in_process: dict[str, str] = {}

    hashes: dict[int, str] = {}  # each sample hashed once per run, whatever the number of editors

    with tqdm(total=sum(len(v) for v in pending.values()), disable=not progress, unit="edit",
              dynamic_ncols=True, position=shard.rank) as bar:
        def on_written(indices: list[int]) -> None:
            nonlocal written
            written += len(indices)
            bar.update(len(indices))
            if on_batch is not None:
                on_batch(written)

        def on_start(key: str) -> None:
            bar.set_description(key if not shard.distributed else f"[rank {shard.rank}] {key}")

        jobs = [isolation.EditorJob(run_dir, suite, comp, metrics, ids, pending[comp.key], layout, own_file,
                                    dataset if dataset_given else None, hashes,
                                    isolation.shared_weights(comp))
                for comp in editors if pending[comp.key]]
        # Editors sharing a model folder together (one load); samples decoded once (sample_cache).
        groups = sample_cache.plan(isolation.groups(jobs), dataset, run_dir, shard.rank)
        try:
            if suite.report_images:
                rundir.save_report_inputs(run_dir, layout, sample_cache.first_reader(groups, dataset),
                                          [i for i in range(min(suite.report_samples, len(ids))) if shard.owns(i)])
            for group in groups:
                got, why = isolation.run_editors(group, dataset, isolate=suite.isolation == "process",
                                                 on_written=on_written, version=version, metric_objs=metric_objs,
                                                 state=state, on_start=on_start)
                weights.update(got)
                if why:
                    in_process.update({job.editor.key: why for job in group})
        finally:
            sample_cache.remove(run_dir, shard.rank)
    if shard.rank == 0:
        _record_weights(run_dir, state, weights, in_process)


def _record_weights(run_dir: Path, state: Any, more: dict[str, str] | None = None,
                    in_process: dict[str, str] | None = None) -> None:
    """{weights file: SHA-256} of every model the metrics loaded (here and in the editors'
    processes), under run.json's "weights"; and which editors ran in process and why."""
    files = {**state.weight_files(), **(more or {})}
    if files or in_process:
        meta = rundir.read_meta(run_dir)
        if files:
            meta.weights = {**(meta.weights or {}), **files}
        if in_process:
            meta.extra["editors_in_process"] = {**meta.extra.get("editors_in_process", {}), **in_process}
        rundir.write_meta(run_dir, meta)


def finalize(run_dir: Path) -> RunOutcome:
    """Aggregate ``samples.jsonl`` into ``summary.csv`` and mark the run complete."""
    suite = rundir.load_run_suite(run_dir)
    editors, metrics = resolve(suite)
    meta = rundir.read_meta(run_dir)
    recs = records.read_sample_records(run_dir / records.SAMPLES_FILE, version=meta.schema_version)
    with ci_method(suite.ci):
        rows, counts = scoring.summarise(meta, [e.key for e in editors], [(c.key, c.cls(c.config)) for c in metrics],
                                         recs, suite.seed)
    records.write_summary(run_dir / records.SUMMARY_FILE, rows)
    meta = dataclasses.replace(meta, status="complete", finished=rundir.now(), **counts,
                               extra={**meta.extra, "intervals": describe_intervals(suite.ci)})
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
    suite = rundir.load_run_suite(run_dir)
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
        meta.rescored_metrics = sorted(keys)
        meta.weights = {**(parent.run.weights or {}), **state.weight_files()}
        rundir.write_meta(new_dir, meta)
        return finalize(new_dir)
    except BaseException:
        import shutil

        shutil.rmtree(new_dir, ignore_errors=True)
        raise
