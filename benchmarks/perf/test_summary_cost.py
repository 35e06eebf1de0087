"""What the end-of-run summary costs as a run grows: ``summarise`` (what ``finalize`` calls) over the
default suite's metrics on 1,000 and on 10,000 synthetic records of one editor, the two sizes timed
back to back in each round (paired), in one process.

    pytest benchmarks/perf/test_summary_cost.py --benchmark-only    # ratio printed at the end
    IX2X_PERF_ROUNDS=3 pytest benchmarks/perf/test_summary_cost.py --benchmark-only

Goal: 10x the records cost at most 11x the time (every set-level statistic linear in the samples:
bootstrap resamples are index arrays over per-sample arrays gathered once). CPU time is reported
beside wall time because a shared machine's wall time says more about its neighbours.
"""

import os
import time

from synthetic_records import suite_metrics, synthetic_records

from ix2x.benchmarks.scoring import summarise

SIZES = (1_000, 10_000)
ROUNDS = int(os.environ.get("IX2X_PERF_ROUNDS", "1"))


def _timed(metrics, recs) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    summarise(None, ["instructx2x"], metrics, recs, 0)
    return time.perf_counter() - wall, time.process_time() - cpu


def test_summary_cost_per_record(benchmark):
    metrics = suite_metrics()
    recs = {n: synthetic_records(n, seed=n) for n in SIZES}
    summarise(None, ["instructx2x"], metrics, synthetic_records(20), 0)  # imports, first calls
    pairs = []

    def one_round():
        small, large = _timed(metrics, recs[SIZES[0]]), _timed(metrics, recs[SIZES[1]])
        pairs.append((small, large))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(
        sizes=list(SIZES),
        wall_ratios=[large[0] / small[0] for small, large in pairs],
        cpu_ratios=[large[1] / small[1] for small, large in pairs],
        small_cpu_s=[small[1] for small, _ in pairs], large_cpu_s=[large[1] for _, large in pairs])
