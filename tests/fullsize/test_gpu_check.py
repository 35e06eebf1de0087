"""`make gpu-check` on a machine without CUDA: it says so and exits 0; its measurement code runs
end to end at tiny size on the CPU (`--tiny`, a dry run whose numbers mean nothing)."""

import json
import subprocess
import sys

import pytest
import torch

from ix2x.diffusion.memory import estimate_for_folder

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks the no-CUDA path; the machine has CUDA")
def test_without_cuda_exits_0_and_says_so(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ix2x.benchmarks.gpu.check", "--out", str(tmp_path / "out")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device" in proc.stdout and "nothing was measured" in proc.stdout
    assert not (tmp_path / "out").exists()  # no result file that could be mistaken for a measurement


def test_make_target_runs_the_check():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "gpu-check:" in makefile and "ix2x.benchmarks.gpu.check" in makefile


def test_bf16_peak_lookup():
    from ix2x.benchmarks.gpu.check import bf16_peak

    assert bf16_peak("NVIDIA H200") == 989.4
    assert bf16_peak("NVIDIA H100 PCIe") == 756.5
    assert bf16_peak("NVIDIA A100-SXM4-80GB") == 312.0
    assert bf16_peak("Some Future Card") is None


@pytest.mark.slow
def test_tiny_dry_run_executes_every_part(tmp_path):
    """Every part of the check runs on the CPU with the tiny model (about 2 minutes here) and writes
    the documented JSON keys; the table is labelled as a dry run."""
    out = tmp_path / "dry"
    proc = subprocess.run([sys.executable, "-m", "ix2x.benchmarks.gpu.check", "--tiny", "--out", str(out),
                           "--steps", "2", "--rounds", "1", "--budget-s", "900"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["schema"] == 1 and result["tiny"] is True and result["device"]["kind"] == "cpu"
    parts = result["parts"]
    errors = {k: v.get("error") or v.get("skipped") for k, v in parts.items()
              if "error" in v or isinstance(v.get("skipped"), str)}
    assert not errors, errors
    assert parts["cuda_tests"]["skipped"] == parts["cuda_tests"]["tests"] > 0  # each says why
    assert parts["flops"]["unet_tflop_per_edit"] > 0
    rows = parts["loop"]["rows"]
    assert {(r["dtype"], r["variant"], r["batch"]) for r in rows} == {
        (d, v, b) for d in ("float32", "bfloat16") for v in ("eager", "channels_last") for b in (1, 2)}
    compiled = parts["compile"]["rows"]
    assert {(r["dtype"], r["variant"], r["batch"]) for r in compiled} == {
        (d, "compile", b) for d in ("float32", "bfloat16") for b in (1, 2)}
    assert all("compile_s" in r for r in compiled)
    for r in rows + compiled:
        assert r["edit_s"] > 0 and r["images_per_s"] > 0 and r["unet_tflops"] > 0
        assert r["estimated_gb"] == round(estimate_for_folder(out / "tiny_model", r["batch"], r["dtype"], 64).total
                                          / 2**30, 4)
    assert {"b1", "b2"} <= set(parts["ratios"]) and parts["ratios"]["b1"]["rounds"] == 3
    assert not parts["loop"]["skipped"] and not parts["compile"]["skipped"]
    assert parts["torchrun"]["equal"] is True and parts["torchrun"]["records"] == 4
    train = parts["train"]
    assert train["resumed_equals_uninterrupted"] is True and train["max_change_from_init"] > 0
    assert (out / "gpu_check.md").read_text().startswith("# DRY RUN")
