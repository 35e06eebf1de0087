"""Fixtures and the ratio summary of the benchmarks (``pytest benchmarks/perf --benchmark-only``)."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """CPU benchmarks run on one thread, so that numbers from a shared machine compare within a run."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from ix2x.diffusion.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("bench") / "tiny", seed=0, image_size=64)


def pytest_terminal_summary(terminalreporter, config):
    """Ratios against their goals, each paired (its runs made back to back in one round) with its
    spread over the rounds and n."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    extra = {b.name: b.extra_info for b in session.benchmarks}
    lines = []
    for size in ("tiny", "full"):
        for batch in (1, 8):
            for variant in ("plain", "rse"):
                frac = extra.get(f"test_loop[{size}-{variant}-b{batch}]", {}).get("outside_unet_vae_fraction")
                if frac is not None:
                    lines.append(f"{size} b{batch}: {variant} time outside UNet+VAE = {100 * frac:.2f} % (target < 5 %)")
    # Ratios against goals only from the interleaved (paired) test: unpaired medians of separate
    # tests mix in whatever else the machine did meanwhile.
    for b in session.benchmarks:
        if b.name.startswith("test_paired_ratios"):
            e = b.extra_info
            n = e["steps"]
            floor = (3 * n + 2) / (3 * n)  # the relevance pass: 2 extra UNet evaluations in 3n
            lines.append(
                f"tiny {b.name[-3:-1]} interleaved, {n} steps: RSE / plain = {_spread(e['rse_over_plain_wall'])} "
                f"wall, {_spread(e['rse_over_plain_cpu'])} CPU; floor (3n+2)/3n = {floor:.4f}, goal <= "
                f"{1.03 * floor:.4f} (3 % over the floor)")
            lines.append(
                f"tiny {b.name[-3:-1]} interleaved, {n} steps: ours / diffusers = "
                f"{_spread(e['ours_over_diffusers_wall'])} wall, {_spread(e['ours_over_diffusers_cpu'])} CPU "
                f"(goal <= 1.0)")
        if b.name == "test_bfloat16_over_float32":
            e = b.extra_info
            lines.append(
                f"shipped instructx2x on the CPU, interleaved: bfloat16 / float32 = "
                f"{_spread(e['bf16_over_fp32_wall_ratios'])} wall "
                f"(medians {e['bf16_s_per_edit']:.3f} vs {e['fp32_s_per_edit']:.3f} s per edit, batch {e['batch']}); "
                f"mean abs difference of the edits {e['mean_abs_diff_of_edits']:.4f}")
        if b.name == "test_metric_suite_over_editor":
            e = b.extra_info
            lines.append(
                f"phantom suite metrics / instructx2x edit, paired by round = {_spread(e['metrics_over_edit_ratios'])} "
                f"(medians {e['metrics_ms_per_sample']:.1f} ms vs {e['edit_ms_per_sample']:.1f} ms per sample, "
                f"batch {e['batch']}; target < 0.10)")
        if b.name == "test_summary_cost_per_record":
            e = b.extra_info
            lines.append(
                f"summary of {e['sizes'][1]:,} / {e['sizes'][0]:,} records = {_spread(e['cpu_ratios'])} CPU, "
                f"{_spread(e['wall_ratios'])} wall (paired; target <= 11 for 10x records)")
    if lines:
        terminalreporter.section("ix2x performance ratios")
        for line in lines:
            terminalreporter.write_line(line)


def _spread(ratios) -> str:
    """Median of paired ratios with their range and n, e.g. ``9.81 [9.52, 10.20] n=3``."""
    import statistics

    if not ratios:
        return "n/a (n=0)"
    return f"{statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}] n={len(ratios)}"
