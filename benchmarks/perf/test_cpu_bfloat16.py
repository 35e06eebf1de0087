"""bfloat16 against float32 inference of the shipped small InstructX2X on this CPU (the default suite's
editor, its settings: 128 px, 20 DDIM steps, RSE), interleaved round by round in one process, one
thread. The paired ratio of each round goes to extra_info, their median, range and n to the
terminal summary.

    pytest benchmarks/perf/test_cpu_bfloat16.py --benchmark-only -s

The setting exists already (``dtype`` of every diffusion editor; "auto" is float32 on the CPU); the
default is not changed. Whether the metrics agree: docs/performance.md (two suite runs compared with
``ix2x compare``).
"""

import os
import statistics
import time

import torch

PROMPTS = ("Add the finding of left pleural effusion.", "Remove the finding of cardiomegaly.")
BATCH = int(os.environ.get("IX2X_BENCH_BATCH", "8"))
ROUNDS = int(os.environ.get("IX2X_BENCH_ROUNDS", "3"))


def _editor(dtype):
    from ix2x.registry import load

    cls = load("editor", "instructx2x")
    return cls(cls.Config(model="builtin:phantom_ix2x", resolution=128, steps=20, dtype=dtype)).to("cpu")


def test_bfloat16_over_float32(benchmark):
    from ix2x.data.phantom import render_pair
    from ix2x.types import EditRequest

    pairs = [render_pair(100 + i, size=128) for i in range(BATCH)]
    requests = lambda seed: [EditRequest(f"s{i}", torch.from_numpy(p.past / 255.0).float()[None],  # noqa: E731
                                         p.instruction or PROMPTS[i % 2], seed=seed + i) for i, p in enumerate(pairs)]
    editors = {"float32": _editor("float32"), "bfloat16": _editor("bfloat16")}
    wall = {k: [] for k in editors}
    outputs = {}
    order = list(editors)
    for name, ed in editors.items():
        outputs[name] = ed.edit(requests(0))  # warm-up; also the edits compared below
    seeds = iter(range(1, 10**6))

    def one_round():
        order.append(order.pop(0))
        seed = next(seeds) * 100
        for name in order:
            t0 = time.perf_counter()
            editors[name].edit(requests(seed))
            wall[name].append(time.perf_counter() - t0)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    # Paired: each round's bfloat16 time over the same round's float32 time (back to back).
    ratios = [b / f for b, f in zip(wall["bfloat16"], wall["float32"])]
    diff = torch.stack([(a.image - b.image).abs().mean() for a, b in zip(outputs["float32"], outputs["bfloat16"])])
    benchmark.extra_info.update(
        bf16_over_fp32_wall=statistics.median(ratios), bf16_over_fp32_wall_ratios=ratios, fp32_s_per_edit=statistics.median(wall["float32"]) / BATCH,
        bf16_s_per_edit=statistics.median(wall["bfloat16"]) / BATCH, mean_abs_diff_of_edits=float(diff.mean()),
        batch=BATCH, rounds=ROUNDS)
    assert torch.isfinite(diff).all()
