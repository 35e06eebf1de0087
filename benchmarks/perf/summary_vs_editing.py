"""The end-of-run summary against the editing, at a size a shared CPU cannot edit: a real
``phantom_smoke`` run over N samples, editing and summary timed (CPU time of this process, one
thread, ``isolation: none`` so the editing's CPU time is this process's), then its run directory
grown to COPIES x N samples per editor by repeating its records under new sample and patient ids,
and ``finalize`` (read ``samples.jsonl``, every interval, write ``summary.csv``) timed on that.

    python benchmarks/perf/summary_vs_editing.py OUT --samples 256 --copies 20 --rounds 2

Prints JSON: the editing's CPU time per record, the summary's at both sizes, and the summary's share
of the editing at the large size (goal < 10 %). docs/run_cost.md has the numbers it gave.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path


def _timed(times: dict, name: str, f):
    def g(*a, **k):
        w, c = time.perf_counter(), time.process_time()
        try:
            return f(*a, **k)
        finally:
            times[name] = {"wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c}
    return g


def real_run(out: Path, n: int) -> tuple[Path, dict]:
    from ix2x.benchmarks import api, runner

    times: dict = {}
    edit_and_score, finalize = runner._edit_and_score, runner.finalize
    runner._edit_and_score = _timed(times, "editing", edit_and_score)
    runner.finalize = _timed(times, "summary", finalize)
    try:
        suite = api.build_suite("phantom_smoke", split="train", limit=n, threads=1)
        # The train split of 640 phantoms (512 pairs); isolation none: the editing's CPU time is ours.
        suite = dataclasses.replace(suite, isolation="none", data=dataclasses.replace(
            suite.data, phantom=dataclasses.replace(suite.data.phantom, n=max(640, 2 * n))))
        outcome = api.run_suite(suite, out, progress=False, report=False)
    finally:
        runner._edit_and_score, runner.finalize = edit_and_score, finalize
    if not outcome.ok:
        raise SystemExit("the run failed: " + "; ".join(outcome.problems()))
    times["n_records"] = outcome.n_records
    return outcome.run_dir, times


def grown(src: Path, copies: int) -> tuple[Path, int]:
    """A copy of run directory ``src`` (run.json, samples.jsonl) with its records repeated ``copies``
    times under new sample and patient ids."""
    dst = src.parent / f"{src.name}-x{copies}"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    shutil.copy(src / "run.json", dst / "run.json")
    lines = (src / "samples.jsonl").read_text().splitlines()
    n = 0
    with open(dst / "samples.jsonl", "w") as f:
        for c in range(copies):
            for line in lines:
                r = json.loads(line)
                if "editor" in r:
                    r["sample_id"] = f"{r['sample_id']}-c{c}"
                    if r.get("patient_id"):
                        r["patient_id"] = f"{r['patient_id']}-c{c}"
                    n += 1
                elif c:
                    continue  # a header line, once
                f.write(json.dumps(r) + "\n")
    return dst, n


def main() -> None:
    from ix2x.benchmarks import runner

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--copies", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    run_dir, times = real_run(args.out, args.samples)
    per_record = times["editing"]["cpu_s"] / times["n_records"]
    big, n = grown(run_dir, args.copies)
    rounds = []
    for _ in range(args.rounds):
        w, c = time.perf_counter(), time.process_time()
        runner.finalize(big)
        rounds.append({"wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c})
    print(json.dumps({
        "real_run": {"run_dir": str(run_dir), **times, "editing_cpu_s_per_record": per_record},
        "grown": {"run_dir": str(big), "n_records": n, "summary_rounds": rounds,
                  "summary_over_editing_cpu": [r["cpu_s"] / (per_record * n) for r in rounds]},
    }, indent=1))


if __name__ == "__main__":
    main()
