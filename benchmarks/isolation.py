"""Each editor in a child process the runner watches, so that an editor that kills its process
(``os._exit``, a segfault, an out-of-memory kill, a CUDA hard fault) or blocks past the batch
timeout costs only its own samples, never the run.

The child runs :func:`edit_editor` (build, warm up, edit, score, append records, exactly as the
in-process path) for each editor of its group (editors that load one model folder share a child and
one load, :func:`groups`) and reports each step over a pipe; the parent draws the progress bar, calls the
run's ``on_batch`` and enforces the batch timeout by wall clock (the child's own SIGALRM comes
first; an editor that swallows it is killed ``grace`` seconds later). When the child dies the
parent learns how (exit code or signal) and records the samples it never wrote as failed.

Children come from a ``forkserver``: a clean process that imported torch but never ran a parallel
op (forking a process whose OpenMP pool has run hangs the child), so starting one costs a fork
and an unpickling, not a torch import. The child takes the parent's ``sys.path``, environment,
working directory and torch thread count (threads change bytes), so it edits what the parent
would have. A job that cannot be pickled (an editor class defined inside a function) runs in
process, as before isolation, and the run records why.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import time
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ix2x import records
from ix2x.suite import Suite
from ix2x.types import Sample

# How long after the batch timeout a child that has not returned is killed: the child's own
# SIGALRM gets this long to turn the timeout into an ordinary failed batch first.
GRACE_S = 2.0


@dataclass
class EditorJob:
    """What one editor's pass over its pending samples needs, in a form that pickles."""

    run_dir: Path
    suite: Suite
    editor: Any  # runner.Component
    metrics: list[Any]  # runner.Component of every metric
    ids: list[str]
    todo: list[int]
    layout: records.Layout
    own_file: Path
    dataset: Sequence[Sample] | None = None  # None: the child opens the suite's data itself
    # Sample hashes known so far (index -> hash), shared by the run's editors so that each sample
    # is hashed once per run (52 ms per 3,000 px sample); a child reports the ones it adds.
    hashes: dict[int, str] = field(default_factory=dict)
    # The weights folder the editor loads through ix2x.model_pool (Editor.shared_weights), or None.
    shared_weights: str | None = None
    # Where samples decoded by earlier editors are kept (benchmarks.sample_cache), whether this
    # editor keeps those it decodes, and the cache's size bound. None: every sample decoded here.
    decoded: Path | None = None
    decoded_write: bool = False
    decoded_budget: int = 0


def shared_weights(comp: Any) -> str | None:
    """The weights folder the editor of ``comp`` (runner.Component) may share with others
    (:meth:`ix2x.types.Editor.shared_weights`); None for an editor that does not say, or fails to."""
    how = getattr(comp.cls, "shared_weights", None)
    try:
        return how(comp.config) if callable(how) else None
    except Exception:  # a plugin's own bug: its editor runs alone, and fails (if it does) on its own
        return None


def groups(jobs: Sequence[EditorJob]) -> list[list[EditorJob]]:
    """The jobs in the order they run: editors that load the same weights folder one after another
    (at the place of the first of them), so the folder is loaded once per run and freed after the
    last; the others in the suite's order. Seeds depend only on the sample, so order changes no edit."""
    out: list[list[EditorJob]] = []
    by_folder: dict[str, list[EditorJob]] = {}
    for job in jobs:
        if job.shared_weights is None:
            out.append([job])
        elif job.shared_weights in by_folder:
            by_folder[job.shared_weights].append(job)
        else:
            by_folder[job.shared_weights] = [job]
            out.append(by_folder[job.shared_weights])
    return out


@dataclass
class Outcome:
    """How a child ended: "done", "crash" (exit code or signal) or "timeout" (killed by the parent)."""

    kind: str
    in_flight: list[int] = field(default_factory=list)  # the samples being edited when it ended
    cause: str = ""
    weight_files: dict[str, str] = field(default_factory=dict)
    at: int = 0  # the job of the group that was running when it ended


# --------------------------------------------------------------------------------------- parent

def available() -> bool:
    return "forkserver" in multiprocessing.get_all_start_methods()


def pickled(jobs: Sequence[EditorJob]) -> tuple[bytes | None, str]:
    """The jobs' bytes (one pickle: the jobs keep sharing their hashes), or None and why they cannot
    cross into a child process."""
    try:
        return pickle.dumps(list(jobs), protocol=pickle.HIGHEST_PROTOCOL), ""
    except Exception as e:  # local classes, lambdas, open handles: pickle raises several types
        return None, f"{type(e).__name__}: {e}"


# Imported once, in the server, so that a child starts with them (a fork, not an import).
PRELOAD = ["ix2x.benchmarks.runner", "ix2x.benchmarks.editing", "ix2x.benchmarks.scoring",
           "ix2x.classifiers.scoring", "ix2x.data.sources", "ix2x.images"]


# The diffusion stack: about 19 s to import on a 2-core CPU, paid once in the
# server rather than in every diffusion editor's process. Only for suites with such editors.
DIFFUSION_PRELOAD = ["diffusers.models.unets.unet_2d_condition", "diffusers.models.autoencoders.autoencoder_kl",
                     "transformers.models.clip.modeling_clip", "transformers.models.clip.tokenization_clip"]
LIGHT_EDITORS = {"identity", "oracle"}


def _context(jobs: Sequence[EditorJob]) -> Any:
    ctx = multiprocessing.get_context("forkserver")
    # Takes effect when the server starts (the first editor of a process): the run's own editor
    # and metric modules too. A module that fails to import is skipped by the server.
    job = jobs[0]
    extra = [c.cls.__module__ for c in [*(j.editor for j in jobs), *job.metrics]]
    if any(e.name not in LIGHT_EDITORS for e in job.suite.editors):
        extra += DIFFUSION_PRELOAD
    ctx.set_forkserver_preload(list(dict.fromkeys([*PRELOAD, *extra])))
    return ctx


def describe_exit(code: int | None) -> str:
    """``-11`` -> "killed by signal 11 (SIGSEGV)", ``3`` -> "exited with code 3"."""
    if code is None:
        return "ended without an exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"killed by signal {-code} ({name}){hint}"
    return f"exited with code {code}"


def run_in_child(job_bytes: bytes, jobs: Sequence[EditorJob], *, on_written: Callable[[list[int]], None],
                 on_start: Callable[[str], None] = lambda key: None) -> Outcome:
    """Run ``jobs`` (the pickled list ``job_bytes``) one after another in a child process and watch it
    until it finishes, dies or overruns a batch. Exceptions the child reports (a user error, a full
    disk, Ctrl-C) are raised here."""
    ctx = _context(jobs)
    here, there = ctx.Pipe(duplex=True)
    import torch

    surroundings = (list(sys.path), dict(os.environ), os.getcwd(), torch.get_num_threads())
    proc = ctx.Process(target=_child_main, args=(surroundings, job_bytes, there),
                       name=f"ix2x-editor-{jobs[0].editor.key}")
    with _main_script_left_out():
        proc.start()
    there.close()
    job = jobs[0]
    hard = job.suite.batch_timeout_s + GRACE_S if job.suite.batch_timeout_s else None
    in_flight: list[int] = []
    deadline: float | None = None
    at = 0
    weights: dict[str, str] = {}
    try:
        while True:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            if here.poll(wait):
                try:
                    kind, payload = here.recv()
                except (EOFError, OSError):  # the child is gone
                    break
                if kind == "editor":  # the child starts the group's job `payload`
                    at, in_flight = payload, []
                    on_start(jobs[at].editor.key)
                elif kind == "edit":
                    in_flight, deadline = payload, (time.monotonic() + hard if hard else None)
                elif kind == "edited":
                    deadline = None
                elif kind == "hashes":
                    jobs[at].hashes.update(payload)
                elif kind == "written":
                    in_flight = []
                    on_written(payload)  # may raise (tests kill runs here): the child waits for "go"
                    here.send("go")
                elif kind == "editor_done":
                    weights.update(payload)
                elif kind == "done":
                    return Outcome("done", weight_files=weights, at=at)
                elif kind == "error":
                    raise _exception(payload)
                elif kind == "interrupted":
                    raise KeyboardInterrupt
            elif deadline is not None and time.monotonic() > deadline:
                proc.kill()
                proc.join()
                return Outcome("timeout", in_flight, f"batch took longer than batch_timeout_s="
                               f"{job.suite.batch_timeout_s:g}; the editor did not stop, so its process was "
                               "killed", weights, at)
            elif not proc.is_alive():
                break
        proc.join()
        return Outcome("crash", in_flight, f"the editor's process {describe_exit(proc.exitcode)}", weights, at)
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        here.close()


@contextmanager
def _main_script_left_out() -> Iterator[None]:
    """multiprocessing re-runs the parent's main script in each child, so a user's script calling
    the runner without an ``if __name__ == "__main__"`` guard would run again there. The child needs
    nothing of it (the job names every class it uses), so the child is started without it."""
    real = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = real


def _exception(payload: Any) -> BaseException:
    if isinstance(payload, BaseException):
        return payload
    return RuntimeError(str(payload))


# --------------------------------------------------------------------------------------- child

def _child_main(surroundings: tuple[list[str], dict[str, str], str, int], job_bytes: bytes, conn: Any) -> None:
    """The child: take the parent's surroundings, unpickle the job, run it, report how it ended.
    Leaves by ``os._exit`` so nothing inherited from the server (atexit handlers) runs twice."""
    code = 0
    try:
        # sys.path, environment and working directory before unpickling: the job's classes (a
        # plugin's editor) may be importable only with the parent's path, and the server's copies
        # are as old as the server.
        sys_path, env, cwd, threads = surroundings
        sys.path[:] = sys_path
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        import torch

        torch.set_num_threads(threads)  # the parent's count: threads change the bytes of an edit
        jobs = pickle.loads(job_bytes)

        def send(kind: str, payload: Any = None) -> None:
            conn.send((kind, payload))
            if kind == "written" and conn.recv() != "go":
                raise RuntimeError("the runner stopped this editor")

        edit_group(jobs, send)
        conn.send(("done", None))
    except KeyboardInterrupt:
        _try_send(conn, ("interrupted", None))
        code = 130
    except BaseException as e:
        try:
            pickle.dumps(e)
            _try_send(conn, ("error", e))
        except Exception:
            _try_send(conn, ("error", f"{type(e).__name__}: {e}"))
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _try_send(conn: Any, msg: Any) -> None:
    try:
        conn.send(msg)
    except Exception:
        pass


# --------------------------------------------------------------------------------------- the work

def edit_group(jobs: Sequence[EditorJob], send: Callable[[str, Any], None], *, metric_objs: list[Any] | None = None,
               state: Any = None) -> dict[str, str]:
    """The jobs one after another (:func:`edit_editor`), reporting ``("editor", k)`` before job ``k``
    and ``("editor_done", weight files)`` after it. The editors share the models they load from
    one folder (ix2x.model_pool); a model no later job needs is freed before the next starts."""
    from ix2x import model_pool
    from ix2x.benchmarks.metric_objects import placed as _placed, with_scoring as _with_scoring

    if metric_objs is None and jobs:  # built once for the group's editors (the same metrics)
        metric_objs = [_placed(c.cls(c.config), jobs[0].suite.device) for c in jobs[0].metrics]
        state = _with_scoring(metric_objs, jobs[0].suite)
    weights: dict[str, str] = {}
    with model_pool.sharing():
        for k, job in enumerate(jobs):
            model_pool.keep(j.shared_weights for j in jobs[k:] if j.shared_weights)
            send("editor", k)
            got = edit_editor(job, send, metric_objs=metric_objs, state=state)
            weights.update(got)
            send("editor_done", got)
    return weights


def edit_editor(job: EditorJob, send: Callable[[str, Any], None], *, metric_objs: list[Any] | None = None,
                state: Any = None) -> dict[str, str]:
    """One editor over ``job.todo``, batch by batch: edit, score, append the records. Reports
    ``("edit", indices)`` before and ``("edited", None)`` after each editor call and
    ``("written", indices)`` after each batch is on disk. Returns the metrics' weight files."""
    from ix2x.threads import torch_threads

    # The run's thread count, in the child as in process: threads change the bytes of an edit.
    with torch_threads(job.suite.threads):
        return _edit_editor(job, send, metric_objs=metric_objs, state=state)


def _edit_editor(job: EditorJob, send: Callable[[str, Any], None], *, metric_objs: list[Any] | None,
                 state: Any) -> dict[str, str]:
    from ix2x.benchmarks import editing, rundir, scoring
    from ix2x.benchmarks.metric_objects import bind as _bind, placed as _placed, with_scoring as _with_scoring

    suite, comp = job.suite, job.editor
    dataset = job.dataset
    if dataset is None:
        from ix2x.data.sources import open_dataset

        from ix2x.benchmarks import array_shard

        # The runner's selection: an array shard (`--shard I/N`) edits its share, indexed as the runner's.
        dataset = array_shard.select(open_dataset(suite.data, progress=False),
                                     rundir.read_meta(job.run_dir).extra.get("shard"))
    if job.decoded is not None:  # each sample decoded once per run, whatever the number of editors
        from ix2x.benchmarks.sample_cache import DecodedSamples

        dataset = DecodedSamples(dataset, job.decoded, write=job.decoded_write, budget=job.decoded_budget)
    if metric_objs is None:
        metric_objs = [_placed(c.cls(c.config), suite.device) for c in job.metrics]
        state = _with_scoring(metric_objs, suite)
    labelled = list(zip([m.key for m in job.metrics], metric_objs))
    hashes = job.hashes  # in process: the runner's own dict, shared by its editors

    def load(indices: Sequence[int]) -> tuple[list[Sample], list[str], list[records.SampleRecord]]:
        """The samples of ``indices`` that load, their hashes, and a failed record for each that does not."""
        batch, failed, new = [], [], {}
        for i in indices:
            sample, rec = load_sample(dataset, i, job.ids[i], comp.key)
            if rec is not None:
                failed.append(rec)
                continue
            if i not in hashes:  # setdefault would hash again every time
                hashes[i] = new[i] = rundir.sample_hash(sample)
            batch.append((i, sample))
        if new:
            send("hashes", new)  # a child's copy: the runner keeps them for the next editors
        return [s for _, s in batch], [hashes[i] for i, _ in batch], failed

    todo = job.todo
    editor, stage, error = editing.build_editor(comp.cls, comp.config, suite.device)
    # The first batch's edits when the warm-up made them (untimed): that batch is not edited twice.
    first_loaded, first_edited = None, None
    with records.RecordWriter(job.own_file) as writer:
        if editor is not None:
            _bind(metric_objs, editor, suite)
            first = todo[:suite.batch_size]
            first_loaded = load(first)
            if first_loaded[0]:
                send("edit", first)
                first_edited = editing.warm_up(editor, first_loaded[0], suite, keep=len(todo) > suite.batch_size)
                send("edited", None)
        for start in range(0, len(todo), suite.batch_size):
            indices = todo[start:start + suite.batch_size]
            batch, batch_hashes, recs = first_loaded if start == 0 and first_loaded else load(indices)
            if batch and editor is None:  # the editor never started: each of its samples fails with why
                recs += scoring.failed_records(comp.key, batch, stage, error, batch_hashes)
            elif batch and start == 0 and first_edited is not None:
                edited = first_edited
            elif batch:
                send("edit", indices)
                edited = editing.edit_batch(editor, batch, suite)
                send("edited", None)
            if batch and editor is not None:
                recs += scoring.batch_records(comp.key, batch, edited, labelled, batch_hashes, run_dir=job.run_dir,
                                              layout=job.layout, save_images=suite.save_images)
            order = {sid: n for n, sid in enumerate(job.ids[i] for i in indices)}
            writer.write_batch(sorted(recs, key=lambda r: order[r.sample_id]))  # dataset order
            send("written", indices)
    _bind(metric_objs, None, suite)  # no metric keeps this editor's weights alive past it
    del editor
    return state.weight_files() if state is not None else {}


def load_sample(dataset: Sequence[Sample], index: int, sample_id: str,
                editor_key: str) -> tuple[Sample | None, records.SampleRecord | None]:
    """``(sample, None)``, or ``(None, failed record)`` when the sample's files cannot be loaded or
    its instruction parsed: one bad row costs its own sample, not the run. The error names the
    file and the CSV line."""
    from ix2x.errors import DataError

    try:
        return dataset[index], None
    except DataError as e:
        text = str(e)
        where = getattr(dataset, "where", lambda i: None)(index)
        if where and where.split(" of ")[0] not in text:
            text = f"{text} ({where})"
        return None, records.SampleRecord(editor=editor_key, sample_id=sample_id, status="failed",
                                          error=f"{type(e).__name__}: {text}", stage="load")


def run_editors(jobs: Sequence[EditorJob], dataset: Sequence[Sample], *, isolate: bool,
                on_written: Callable[[list[int]], None], version: int, metric_objs: list[Any], state: Any,
                on_start: Callable[[str], None] = lambda key: None) -> tuple[dict[str, str], str | None]:
    """Run ``jobs`` (one of :func:`groups`) one after another in a watched child (``isolate``) or in
    this process. An editor whose child crashes or overruns a batch costs its own samples: the
    group's later editors go on in a new child. Returns the metrics' weight files and, when
    isolation was asked for but not possible, why."""
    why = None
    if isolate and not available():
        why = "this platform has no forkserver start method"
    job_bytes = None
    if isolate and why is None:
        job_bytes, why = pickled(jobs)
    if job_bytes is None:
        def send(kind: str, payload: Any = None) -> None:
            if kind == "written":
                on_written(payload)
            elif kind == "editor":
                on_start(jobs[payload].editor.key)

        return edit_group(jobs, send, metric_objs=metric_objs, state=state), why
    weights: dict[str, str] = {}
    remaining = list(jobs)
    while remaining:
        out = run_in_child(job_bytes, remaining, on_written=on_written, on_start=on_start)
        weights.update(out.weight_files)
        if out.kind == "done":
            break
        job, later = remaining[out.at], remaining[out.at + 1:]
        # What the child wrote before it ended is kept; the rest is failed here.
        written = {r.sample_id for r in records.read_sample_records(job.own_file, version=version, repair=True)
                   if r.editor == job.editor.key}
        pending = [i for i in job.todo if job.ids[i] not in written]
        in_flight = [i for i in out.in_flight if i in pending]
        if out.kind == "timeout":
            _fail(job, dataset, in_flight, "timeout", f"BatchTimeout: {out.cause}", version)
            pending = [i for i in pending if i not in in_flight]
            on_written(in_flight)
            remaining = ([_with_todo(job, pending)] if pending else []) + later
        else:
            where = f" while editing {', '.join(job.ids[i] for i in in_flight)}" if in_flight else ""
            _fail(job, dataset, pending, "crash",
                  f"EditorCrash: {out.cause}{where}; the samples it had not written are failed (`ix2x run --resume` "
                  "retries a crashed editor once)", version)
            on_written(pending)
            remaining = later  # the editors after it in this group still run, in a new process
        if remaining:
            job_bytes = pickle.dumps(remaining, protocol=pickle.HIGHEST_PROTOCOL)
    return weights, None


def _with_todo(job: EditorJob, todo: list[int]) -> EditorJob:
    import dataclasses

    return dataclasses.replace(job, todo=todo)


def _fail(job: EditorJob, dataset: Sequence[Sample], indices: Sequence[int], stage: str, error: str,
          version: int) -> None:
    from ix2x.benchmarks import scoring
    from ix2x.benchmarks.rundir import sample_hash

    if not indices:
        return
    recs = []
    for i in indices:
        sample, rec = load_sample(dataset, i, job.ids[i], job.editor.key)
        recs += [rec] if sample is None else scoring.failed_records(job.editor.key, [sample], stage, error,
                                                                    [sample_hash(sample)])
    with records.RecordWriter(job.own_file) as writer:
        writer.write_batch(recs)


# --------------------------------------------------------------------------------------- resume

def retry_crashed(run_dir: Path, meta: records.RunMeta, done: Sequence[records.SampleRecord], *,
                  skip: bool) -> list[str]:
    """On resume, set aside the records of samples that could not be loaded (always) and of editors
    whose process crashed (once per editor (run.json's ``crash_retries`` counts), never with ``skip``. Returns one
    line per crashed editor saying which was done. ``meta`` is updated; the caller writes it."""
    from ix2x.benchmarks.rundir import reject_records

    unloadable = {r.key for r in done if r.status == "failed" and r.stage == "load"}
    notes = []
    if unloadable:  # loading is cheap and the user may have fixed the file: always tried again
        reject_records(run_dir, unloadable, "the sample could not be loaded; tried again on resume",
                       version=meta.schema_version)
        notes.append(f"{len(unloadable)} record(s) of samples that could not be loaded are tried again")
    crashed: dict[str, list[records.SampleRecord]] = {}
    for r in done:
        if r.status == "failed" and r.stage == "crash":
            crashed.setdefault(r.editor, []).append(r)
    retries = meta.extra.setdefault("crash_retries", {})
    for editor, recs in crashed.items():
        cause = (recs[0].error or "").split(";")[0].removeprefix("EditorCrash: ")
        if skip:
            notes.append(f"editor `{editor}` crashed earlier ({cause}); its {len(recs)} failed sample(s) are kept "
                         "and not retried (--skip-crashed)")
        elif retries.get(editor, 0) >= 1:
            notes.append(f"editor `{editor}` crashed again after its retry ({cause}); its {len(recs)} failed "
                         "sample(s) are kept and not retried (a crashed editor is retried once)")
        else:
            reject_records(run_dir, {r.key for r in recs}, "the editor's process crashed; retried on resume",
                           version=meta.schema_version)
            retries[editor] = retries.get(editor, 0) + 1
            notes.append(f"editor `{editor}` crashed earlier ({cause}); retrying its {len(recs)} sample(s) once "
                         "(`--skip-crashed` keeps them failed instead)")
    return notes
