"""CUDA tests (`pytest -m cuda`; `make gpu-check` runs them first). Each skips on a machine without
CUDA and says so. They use the tiny random model, so they take seconds on a GPU."""

import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")]

PROMPT = "Add the finding of left pleural effusion."


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from ix2x.diffusion.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("cuda_tiny") / "model", seed=0, image_size=64)


def _edit(model_dir, device, dtype, n=2, **settings):
    from ix2x.editors.instructx2x import InstructX2X
    from ix2x.types import EditRequest

    editor = InstructX2X(InstructX2X.Config(model=str(model_dir), steps=4, resolution=64, dtype=dtype, **settings))
    editor.to(device)
    images = [torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(n)]
    return images, editor.edit([EditRequest(f"s{i}", im, PROMPT, seed=i) for i, im in enumerate(images)])


def test_cuda_float32_edit_matches_cpu(tiny_dir):
    """Same weights, seeds and float32: the CUDA edit equals the CPU one to float rounding (noise is drawn
    on the CPU, so both start from the same latents)."""
    _, cpu = _edit(tiny_dir, "cpu", "float32")
    _, gpu = _edit(tiny_dir, "cuda", "float32", channels_last=False)
    for a, b in zip(cpu, gpu):
        assert b.image.device.type == "cpu" and b.image.dtype == torch.float32
        assert (a.image - b.image).abs().max() < 2e-3
        assert torch.equal(a.edit_mask, b.edit_mask) or (a.edit_mask != b.edit_mask).float().mean() < 1e-3


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cuda_half_precision_rse_semantics(tiny_dir, dtype):
    """Half precision on CUDA: finite [0, 1] float32 outputs, pixels outside the mask equal the input
    exactly, peak memory recorded, and the info names the dtype."""
    images, results = _edit(tiny_dir, "cuda", dtype)
    for image, r in zip(images, results):
        assert r.image.dtype == torch.float32 and torch.isfinite(r.image).all()
        outside = r.edit_mask == 0
        assert torch.equal(r.image[outside], image[outside])
        assert r.info["dtype"] == dtype and r.info["device"].startswith("cuda")
        assert r.info["peak_memory_mb"] > 0


def test_cuda_same_seed_same_bytes(tiny_dir):
    """Two runs with the same seeds on the GPU give the same bytes (no nondeterministic kernel in inference)."""
    _, a = _edit(tiny_dir, "cuda", "float16")
    _, b = _edit(tiny_dir, "cuda", "float16")
    assert all(torch.equal(x.image, y.image) for x, y in zip(a, b))


def test_cuda_channels_last_matches_contiguous(tiny_dir):
    """channels-last (the CUDA default) changes the memory layout, not the edit (beyond half-precision rounding)."""
    _, a = _edit(tiny_dir, "cuda", "float16", channels_last=False)
    _, b = _edit(tiny_dir, "cuda", "float16", channels_last=True)
    for x, y in zip(a, b):
        assert (x.image - y.image).abs().mean() < 5e-3


def test_cuda_memory_estimate_bounds_the_peak(tiny_dir):
    """The tiny model's peak CUDA memory (the editor's ``peak_memory_mb``) holds at least its weights
    and at most the estimate of ix2x.diffusion.memory plus 64 MiB (cuBLAS/cuDNN workspaces, which the
    estimate leaves out). The full-size comparison is in make gpu-check (``peak_over_estimate``)."""
    from ix2x.diffusion.memory import estimate_for_folder

    torch.cuda.empty_cache()
    _, results = _edit(tiny_dir, "cuda", "float16", n=4)
    peak = results[0].info["peak_memory_mb"] * 2**20
    est = estimate_for_folder(tiny_dir, 4, "float16", 64)
    assert est.weights <= peak <= est.total + 64 * 2**20, (peak, est)
