"""Join the run directories of array shards (``--shard I/N``) into one run directory.

Per-sample values were computed in the shards; everything computed over the set (AUROC, Pearson r,
distribution metrics, bootstrap intervals, the leaderboard) is computed here, over the merged
records in the order one process writes them, by the same :func:`ix2x.benchmarks.runner.finalize`
a run ends with: so the merged ``summary.csv`` is the one process's (timings aside).

Before anything is written the shards must agree on what makes their values comparable (suite and
settings, code version and packages, data fingerprint, model weights) and cover every sample of the
data exactly once; the missing and duplicated samples are named. ``allow_partial`` merges what
exists and records what is missing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from ix2x import records
from ix2x.benchmarks import array_shard, rundir
from ix2x.errors import UserError
from ix2x.records import RunDir, RunMeta, SampleRecord
from ix2x.types import Sample


class MergeError(UserError):
    pass


def _agreement(metas: dict[Path, RunMeta]) -> None:
    """Refuse shards that differ in anything their values depend on, naming what and where."""
    checks = {
        "suite and settings": lambda m: m.suite,
        "editor settings": lambda m: {k: (v.get("name"), v.get("config")) for k, v in m.editors.items()},
        "metric settings": lambda m: {k: (v.get("name"), v.get("config")) for k, v in m.metrics.items()},
        "record schema": lambda m: m.schema_version,
        "code version (git commit and dirty flag)": lambda m: m.git,
        "package versions": lambda m: m.packages,
        "data (file fingerprint)": lambda m: ((m.data_fingerprint or {}).get("tree") or {}).get("digest"),
        "model weights (SHA-256)": lambda m: sorted((m.weights or {}).values()),
        "shard count": lambda m: (m.extra.get("shard") or {}).get("count"),
    }
    first_dir, first = next(iter(metas.items()))
    for what, get in checks.items():
        for d, m in metas.items():
            if get(m) != get(first):
                detail = _first_difference(get(first), get(m))
                raise MergeError(f"Shards must agree on {what} to be merged, but {d} differs from {first_dir}"
                                 f"{detail}. Run every shard with the same command, code and data.")


def _first_difference(a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return f" (first at `{k}`: {a.get(k)!r} vs {b.get(k)!r})"
    return f" ({a!r} vs {b!r})"


def _open_shards(dirs: Sequence[Path], allow_partial: bool) -> dict[Path, RunMeta]:
    if not dirs:
        raise MergeError("`ix2x merge` needs the shards' run directories (the `--shard I/N` runs).")
    metas: dict[Path, RunMeta] = {}
    for d in dirs:
        d = Path(d)
        if d.resolve() in {p.resolve() for p in metas}:
            raise MergeError(f"{d} is given twice; give each shard's run directory once.")
        meta = RunDir.open(d).run
        if not meta.extra.get("shard"):
            raise MergeError(f"{d} is not a shard (it was not run with `--shard I/N`); merge joins shard runs "
                             "only. A whole run needs no merge.")
        if meta.status != "complete" and not allow_partial:
            raise MergeError(f"Shard {d} is not complete (status {meta.status!r}); finish it with "
                             f"`ix2x run --resume {d}`, or pass `--allow-partial` to merge what it has.")
        metas[d] = meta
    return metas


def _coverage(recs_by_dir: dict[Path, list[SampleRecord]], editors: Sequence[str], ids: Sequence[str]
              ) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(samples without a record for some editor, {sample: [shard dirs]} of those with two or more,
    samples of the records that are not in the data)."""
    seen: dict[tuple[str, str], list[str]] = {}
    for d, recs in recs_by_dir.items():
        for r in recs:
            seen.setdefault(r.key, []).append(str(d))
    known = set(ids)
    foreign = sorted({sid for (_, sid) in seen if sid not in known})
    missing = [sid for sid in ids if any((e, sid) not in seen for e in editors)]
    twice = {sid: where for (_, sid), where in seen.items() if len(where) > 1}
    return missing, twice, foreign


def _names(items: Sequence[str], show: int = 10) -> str:
    more = f" ... and {len(items) - show} more" if len(items) > show else ""
    return ", ".join(items[:show]) + more


def merge_shards(shard_dirs: Sequence[Path], out: Path, *, allow_partial: bool = False,
                 dataset: Sequence[Sample] | None = None, progress: bool = True) -> Any:
    """Merge ``shard_dirs`` into the new run directory ``out`` and finalize it (summary, counts);
    the :class:`~ix2x.benchmarks.runner.RunOutcome`. ``dataset`` overrides the suite's data (tests)."""
    from ix2x.benchmarks import runner

    metas = _open_shards(shard_dirs, allow_partial)
    _agreement(metas)
    first_dir, first = next(iter(metas.items()))
    suite = rundir.load_run_suite(first_dir)
    editors = [e.key for e in suite.editors]
    if dataset is None:
        from ix2x.data.sources import open_dataset

        dataset = open_dataset(suite.data, progress=progress)
    ids = list(getattr(dataset, "sample_ids", None) or [s.sample_id for s in dataset])
    if rundir.ids_digest(array_shard.owned_ids(ids, first.extra["shard"])) != (first.data_fingerprint or {}).get("ids"):
        raise MergeError(f"The data the suite names now holds other samples than {first_dir} was run on; merge "
                         "needs the data the shards were run with.")
    recs_by_dir = {d: RunDir.open(d).sample_records() for d in metas}
    missing, twice, foreign = _coverage(recs_by_dir, editors, ids)
    if foreign:
        raise MergeError(f"{len(foreign)} sample(s) of the shards' records are not in the data: {_names(foreign)}.")
    if twice:
        where = [f"{sid} (in {', '.join(ds)})" for sid, ds in twice.items()]
        raise MergeError(f"{len(twice)} sample(s) are covered by more than one shard: {_names(where, 5)}. Each shard "
                         "index must be given once.")
    indices = sorted(m.extra["shard"]["index"] for m in metas.values())
    count = first.extra["shard"]["count"]
    absent = [i for i in range(count) if i not in indices]
    if missing and not allow_partial:
        shards = f" (shard(s) {', '.join(map(str, absent))} of {count} not given)" if absent else ""
        raise MergeError(f"{len(missing)} sample(s) have no record{shards}: {_names(missing)}. Give every shard's "
                         "run directory, finish the incomplete ones, or pass `--allow-partial` to merge what exists.")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise MergeError(f"`--out` {out} already holds files; merge into a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    try:
        _write(out, metas, recs_by_dir, editors, ids, missing, absent)
        return runner.finalize(out)
    except BaseException:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        raise


def _write(out: Path, metas: dict[Path, RunMeta], recs_by_dir: dict[Path, list[SampleRecord]],
           editors: list[str], ids: list[str], missing: list[str], absent: list[int]) -> None:
    first = next(iter(metas.values()))
    extra = {k: v for k, v in first.extra.items() if k not in ("shard", "outputs")}
    extra["merged_shards"] = [{"run": str(Path(d).resolve()), **m.extra["shard"], "status": m.status,
                               "n_records": len(recs_by_dir[d])} for d, m in metas.items()]
    if missing:
        extra["partial"] = {"missing_shards": absent, "n_missing": len(missing), "missing": missing}
    outputs = _merged_outputs([m.extra.get("outputs") or {} for m in metas.values()])
    if outputs:
        extra["outputs"] = outputs
    tree = (first.data_fingerprint or {}).get("tree")
    meta = dataclasses.replace(first, status="running", created=rundir.now(), finished=None, n_records=None,
                               n_failed=None, n_metric_errors=None, n_per_editor=None, merged_from=None,
                               data_changes=None, argv=["merge", *(str(d) for d in metas)],
                               data_fingerprint={"tree": tree, "n_samples": len(ids), "ids": rundir.ids_digest(ids)},
                               extra=extra)
    rundir.write_meta(out, meta)
    editor_pos = {k: i for i, k in enumerate(editors)}
    sample_pos = {s: i for i, s in enumerate(ids)}
    merged = sorted((r for recs in recs_by_dir.values() for r in recs),
                    key=lambda r: (editor_pos.get(r.editor, len(editor_pos)), sample_pos[r.sample_id]))
    for d, recs in recs_by_dir.items():
        rundir.copy_images(RunDir.open(d), recs, out)
    with records.RecordWriter(out / records.SAMPLES_FILE) as w:
        w.write_batch(merged)


def _merged_outputs(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards' ``outputs`` inventories as one: missing samples joined; the extra files are the
    same in every shard (each is checked against all samples of the data)."""
    out: dict[str, Any] = {}
    for part in parts:
        for name, inv in part.items():
            if name not in out:
                out[name] = {**inv, "missing": list(inv["missing"])}
                continue
            o = out[name]
            o["missing"] += inv["missing"]
            o["n_samples"] += inv["n_samples"]
            o["n_found"] += inv["n_found"]
    for o in out.values():
        o["missing"] = sorted(o["missing"])
        o["n_missing"] = len(o["missing"])
    return out
