"""What the default suite's metrics cost next to its editor: every metric of
``benchmarks/suites/phantom.yaml`` against the shipped small InstructX2X (``instructx2x``, the
suite's settings), on one batch of held-out phantom pairs, round by round in one process.

    pytest benchmarks/perf/test_metric_cost.py --benchmark-only    # ratio printed at the end

Each round edits with new seeds, so the metrics score images they have not seen (nothing is served
from their per-image caches but the inputs and targets, as in a suite where every editor sees the
same inputs). The suite itself records the same ratio per editor as ``latency.metrics_median_s``
next to ``latency.median_s`` in ``summary.csv``.
"""

import dataclasses
import time
from pathlib import Path

import pytest

from ix2x.benchmarks.runner import resolve
from ix2x.suite import load_suite
from ix2x.types import EditRequest

SUITE = Path(__file__).parents[1] / "suites" / "phantom.yaml"
BATCH = 8
ROUNDS = 5  # paired ratios: their spread needs more than 3


def test_metric_suite_over_editor(benchmark):
    from ix2x.data.sources import open_dataset

    suite = load_suite(SUITE)
    # A smaller phantom set than the suite's (quicker to generate), the same size and renderer.
    data = dataclasses.replace(suite.data, limit=BATCH, phantom=dataclasses.replace(suite.data.phantom, n=160))
    samples = list(open_dataset(data))
    editors, metrics = resolve(suite)
    (comp,) = [e for e in editors if e.key == "instructx2x"]
    editor = comp.cls(comp.config).to(suite.device)
    objs = [m.cls(m.config).to(suite.device) for m in metrics]
    seeds = iter(range(10**6))

    def edit():
        return editor.edit([EditRequest(s.sample_id, s.image, s.instruction, next(seeds)) for s in samples])

    def score(results):
        for m in objs:
            m.compute(samples, results)

    score(edit())  # warm-up: networks built, input and target features cached, as after a suite's first batch
    edit_s, score_s = [], []

    def one_round():
        t0 = time.perf_counter()
        results = edit()
        t1 = time.perf_counter()
        score(results)
        edit_s.append(t1 - t0)
        score_s.append(time.perf_counter() - t1)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    ratios = [s / e for s, e in zip(score_s, edit_s)]  # paired: a round's scoring over the same round's edit
    benchmark.extra_info.update(
        batch=len(samples), metrics=[m.key for m in metrics],
        edit_ms_per_sample=1000 * med(edit_s) / len(samples),
        metrics_ms_per_sample=1000 * med(score_s) / len(samples),
        metrics_over_edit=med(ratios), metrics_over_edit_ratios=ratios)
