"""Array-job sharding: N independent processes (a Slurm job array, separate machines, no
``torch.distributed`` rendezvous) each run a share of the samples into its own run directory;
``ix2x merge`` joins them and only then computes the set-level statistics.

Sample ``s`` belongs to shard ``sha256(s) mod N``: the split depends on the sample ids and N only,
never on the order of files or rows, so every shard (and a requeued or resumed one) agrees on it
without talking to the others. A shard's directory is ``<out>/<suite>/shard-<I>-of-<N>``: a job that
is started again (Slurm requeues a pre-empted task with the same command) resumes it.
"""

from __future__ import annotations

import dataclasses

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ix2x.errors import UserError
from ix2x.types import Sample

METHOD = "sha256(sample_id) mod count"


@dataclass(frozen=True)
class ArrayShard:
    index: int
    count: int

    def owns(self, sample_id: str) -> bool:
        return bucket(sample_id, self.count) == self.index

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "method": METHOD}

    @property
    def dir_name(self) -> str:
        width = len(str(self.count - 1))
        return f"shard-{self.index:0{width}d}-of-{self.count}"


def bucket(sample_id: str, count: int) -> int:
    return int.from_bytes(hashlib.sha256(sample_id.encode("utf-8")).digest()[:8], "big") % count


def parse(text: str, environ: Mapping[str, str] = os.environ) -> ArrayShard:
    """``I/N`` (0 <= I < N) or ``slurm``: this task of the Slurm job array (``SLURM_ARRAY_TASK_ID``
    counted from ``SLURM_ARRAY_TASK_MIN`` in steps of ``SLURM_ARRAY_TASK_STEP``, of
    ``SLURM_ARRAY_TASK_COUNT``), so ``--array=1-8`` and ``--array=0-7`` both give shards 0..7 of 8."""
    if text == "slurm":
        try:
            task = int(environ["SLURM_ARRAY_TASK_ID"])
            count = int(environ["SLURM_ARRAY_TASK_COUNT"])
            low = int(environ.get("SLURM_ARRAY_TASK_MIN", 0))
            step = int(environ.get("SLURM_ARRAY_TASK_STEP", 1) or 1)
        except (KeyError, ValueError) as e:
            raise UserError(f"`--shard slurm` must run inside a Slurm job array (sbatch --array=...), but "
                            f"{e} is missing or not a number. Outside Slurm pass `--shard I/N`.") from None
        index = (task - low) // step
    else:
        i, slash, n = text.partition("/")
        try:
            index, count = int(i), int(n)
        except ValueError:
            index, count, slash = -1, 0, ""
        if not slash:
            raise UserError(f"`--shard` must be I/N (this job's index I of N jobs, 0 <= I < N) or `slurm`, got "
                            f"{text!r}. Example: --shard 0/3, --shard 1/3, --shard 2/3.")
    if not (count >= 1 and 0 <= index < count):
        raise UserError(f"`--shard` must have 0 <= I < N and N >= 1, got index {index} of {count} ({text!r}). "
                        "Indices count from 0.")
    return ArrayShard(index, count)


def from_meta(meta_shard: Mapping[str, Any] | None) -> ArrayShard | None:
    if not meta_shard:
        return None
    if meta_shard.get("method", METHOD) != METHOD:
        raise UserError(f"this run was sharded by {meta_shard.get('method')!r}, which this ix2x does not know.")
    return ArrayShard(int(meta_shard["index"]), int(meta_shard["count"]))


def owned_ids(ids: Sequence[str], meta_shard: Mapping[str, Any] | None) -> list[str]:
    shard = from_meta(meta_shard)
    return list(ids) if shard is None else [s for s in ids if shard.owns(s)]


class ShardView(Sequence[Sample]):
    """The samples of ``base`` that one shard owns, in ``base``'s order (lazy, like ``base``)."""

    def __init__(self, base: Sequence[Sample], shard: ArrayShard) -> None:
        self.base = base
        ids = getattr(base, "sample_ids", None)
        ids = list(ids) if ids is not None else [s.sample_id for s in base]
        self._index = [i for i, s in enumerate(ids) if shard.owns(s)]
        self.sample_ids = [ids[i] for i in self._index]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        return self.base[self._index[i]]


def select(dataset: Sequence[Sample], meta_shard: Mapping[str, Any] | None) -> Sequence[Sample]:
    """``dataset`` as the shard recorded in ``run.json`` (``extra["shard"]``) sees it; all of it when
    the run is not a shard."""
    shard = from_meta(meta_shard)
    return dataset if shard is None else ShardView(dataset, shard)


def start_or_resume(suite: Any, out_root: Path, shard: ArrayShard, *,
                    start: Callable[[], Path]) -> tuple[Path, bool]:
    """The shard's run directory and whether it already existed (then it is resumed). A directory
    holding another suite or settings is refused, never mixed with. ``start`` makes a new run
    directory for ``suite`` under ``out_root`` (the runner's ``start_run``; passed in, as the runner
    imports this module)."""
    from ix2x.benchmarks import rundir
    from ix2x.records import check_name

    target = Path(out_root) / check_name("The suite `name`", suite.name) / shard.dir_name
    if (target / "run.json").is_file():
        meta = rundir.read_meta(target)
        recorded = rundir.load_run_suite(target)
        # The recorded thread count is the one the shard keeps, as `--resume` does (threads change
        # edits' last bits; ix2x.threads): another count asked for is not "another run".
        suite = dataclasses.replace(suite, threads=recorded.threads)
        if from_meta(meta.extra.get("shard")) != shard or recorded != suite:
            raise UserError(f"{target} holds another run (other suite, settings or edits folders) than this shard "
                            f"{shard.index}/{shard.count}; pass another `--out`, or `ix2x run --resume {target}` "
                            "to finish that run as it was started.")
        return target, True
    new = start()
    meta = rundir.read_meta(new)
    meta.extra["shard"] = shard.as_dict()
    rundir.write_meta(new, meta)
    try:
        os.rename(new, target)  # atomic; fails when another job made the shard's directory first
    except OSError as e:
        import shutil

        shutil.rmtree(new, ignore_errors=True)
        raise UserError(f"{target} cannot be created ({e.strerror}): another job of shard {shard.index} may be "
                        "running; run each shard index once.") from None
    return target, False
