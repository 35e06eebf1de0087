"""What running each editor in its own watched process costs (suite setting ``isolation``,
benchmarks/isolation.py): the same suite run with ``isolation: none`` and ``isolation: process``,
interleaved round by round in one process, after one untimed round each (the forkserver starts
once per process: its cost is reported apart). The suite is the default one's kind: identity,
oracle and the shipped small InstructX2X (128 px, 20 steps) on phantom test pairs, one metric.

    pytest benchmarks/perf/test_isolation_overhead.py --benchmark-only -s

Also checks that both modes write the same records (timings aside): isolation changes no value.
"""

import json
import os
import statistics
import time

from ix2x import records

N = int(os.environ.get("IX2X_BENCH_SAMPLES", "8"))
ROUNDS = int(os.environ.get("IX2X_BENCH_ROUNDS", "2"))


def _suite(isolation):
    from ix2x.suite import suite_from_dict

    return suite_from_dict({
        "name": f"iso-{isolation}", "isolation": isolation, "batch_size": 4, "report_images": False,
        "data": {"source": "phantom", "split": "test", "limit": N, "phantom": {"n": 100, "seed": 0, "size": 128}},
        "editors": [{"name": "identity"}, {"name": "oracle"},
                    {"name": "instructx2x", "args": {"model": "builtin:phantom_ix2x", "resolution": 128, "steps": 20}}],
        "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}]})


def _values(run_dir):
    out = []
    for r in records.RunDir.open(run_dir).records():
        out.append(json.dumps({k: v for k, v in r.items() if k not in records.TIMING_KEYS and k != "metrics_s"},
                              sort_keys=True))
    return out


def test_isolation_overhead(benchmark, tmp_path):
    from ix2x.benchmarks import runner

    def run(isolation):
        run_dir = runner.start_run(_suite(isolation), tmp_path)
        runner.prepare_data(run_dir, progress=False)
        t0 = time.perf_counter()
        runner.execute(run_dir, progress=False)
        return time.perf_counter() - t0, run_dir

    first = {m: run(m) for m in ("none", "process")}  # untimed: data generated, server started
    assert _values(first["none"][1]) == _values(first["process"][1])
    wall = {"none": [], "process": []}
    order = ["none", "process"]

    def one_round():
        order.append(order.pop(0))
        for mode in order:
            wall[mode].append(run(mode)[0])

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    none, proc = statistics.median(wall["none"]), statistics.median(wall["process"])
    benchmark.extra_info.update({
        "none_s": none, "process_s": proc, "ratio_process_over_none": proc / none,
        "overhead_per_editor_s": (proc - none) / 3, "first_process_run_s": first["process"][0],
        "first_none_run_s": first["none"][0], "samples": N, "torch_threads": __import__("torch").get_num_threads()})
    print(f"\nisolation: none {none:.2f} s, process {proc:.2f} s (x{proc / none:.3f}; "
          f"{(proc - none) / 3:.2f} s per editor); first process run {first['process'][0]:.2f} s "
          f"(starts the forkserver) vs {first['none'][0]:.2f} s")
