"""The path a real user takes, on the CPU: the exact SD 1.5 InstructPix2Pix architecture (random
weights) at 512 px, loaded through the real loader, edited by `instructx2x` (RSE) and `instructpix2pix`
in float32 and bfloat16 through the same code path, 2 steps.

    nice -n 10 make test PYTEST_ARGS="-m fullsize tests/fullsize -s"

Prints run time and peak resident memory per edit (docs/performance.md quotes them).
"""

import json
import time

import numpy as np
import pytest
import torch

from fullsize_helpers import reset_peak, rss_gb

pytestmark = [pytest.mark.slow, pytest.mark.fullsize]

PROMPT = "Add the finding of left pleural effusion."
STEPS = 2
RES = 512


@pytest.fixture(scope="module")
def image():
    """A 512 px phantom radiograph (float32 (1, H, W) in [0, 1]) and its instruction's finding."""
    from ix2x.data.phantom import render_pair

    pair = render_pair(7, size=RES)
    return torch.from_numpy(pair.past.astype(np.float32) / 255.0)[None]


def _edit(editor_name, model_dir, dtype, image):
    from ix2x.registry import load
    from ix2x.types import EditRequest

    cls = load("editor", editor_name)
    editor = cls(cls.Config(model=str(model_dir), steps=STEPS, dtype=dtype, resolution=RES))
    t0 = time.perf_counter()
    editor.to("cpu")
    load_s = time.perf_counter() - t0
    model = editor.model()
    with torch.no_grad():  # fault in every weight page (loading may map the files lazily)
        for module in (model.c.unet, model.c.vae, model.c.text_encoder):
            for p in module.parameters():
                p.float().sum()
    before = rss_gb()["VmRSS"]
    resettable = reset_peak()
    t0 = time.perf_counter()
    [result] = editor.edit([EditRequest("s0", image, PROMPT, seed=3)])
    edit_s = time.perf_counter() - t0
    peak = rss_gb()["VmHWM"]
    stats = {"editor": editor_name, "dtype": dtype, "load_s": round(load_s, 1), "edit_s": round(edit_s, 1),
             "rss_before_edit_gb": round(before, 2), "peak_rss_edit_gb": round(peak, 2),
             "edit_activation_gb": round(peak - before, 2) if resettable else None,
             "unet_dtype": str(model.c.unet.dtype), "text_dtype": str(model.c.text_encoder.dtype)}
    print("\nfullsize", json.dumps(stats))
    del editor, model
    return result, stats


def _trim_heap():
    """Hand freed heap back to the OS (glibc keeps it otherwise, and the next model's resident memory
    would sit on top of the last one's)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass


class _Edits(dict):
    """{(editor, dtype): (EditResult, stats)}, each edit made on first use (so `-k` runs only what a
    test needs), one model in memory at a time."""

    def __init__(self, model_dir, image):
        super().__init__()
        self.model_dir, self.image = model_dir, image

    def __missing__(self, key):
        import gc

        self[key] = _edit(*key[:1], self.model_dir, key[1], self.image)
        gc.collect()
        _trim_heap()
        return self[key]


@pytest.fixture(scope="module")
def edits(sd15_dir, image, torch_threads):
    return _Edits(sd15_dir, image)


def test_architecture_is_sd15_instruct_pix2pix(sd15_dir):
    """Parameter counts equal the published SD 1.5 ones (UNet with 8 input channels), the tokenizer
    files have CLIP's 49,408 tokens and load with transformers' CLIPTokenizer."""
    from transformers import CLIPTokenizer

    from ix2x.diffusion.memory import count_params

    from ix2x.benchmarks.gpu.sd15 import PARAMS

    assert count_params(sd15_dir) == PARAMS
    assert PARAMS["unet"] == 859_532_484  # diffusers' SD 1.5 UNet 859,520,964 + 4 * 320 * 9 for conv_in
    tok = CLIPTokenizer.from_pretrained(sd15_dir / "tokenizer", local_files_only=True)
    assert len(tok) == 49_408 and tok.model_max_length == 77
    assert (tok.bos_token_id, tok.eos_token_id) == (49_406, 49_407)  # where CLIP's vocab.json has them
    ids = tok("Add the finding of pleural effusion.").input_ids
    assert ids[0] == 49_406 and ids[-1] == 49_407 and len(ids) > 4
    unet_cfg = json.loads((sd15_dir / "unet/config.json").read_text())
    assert unet_cfg["in_channels"] == 8 and unet_cfg["cross_attention_dim"] == 768
    assert unet_cfg["block_out_channels"] == [320, 640, 1280, 1280]


@pytest.mark.parametrize("name", ["instructx2x", "instructpix2pix"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_edit_shapes_dtypes_finite(edits, image, name, dtype):
    result, stats = edits[name, dtype]
    assert result.image.shape == image.shape and result.image.dtype == torch.float32
    assert torch.isfinite(result.image).all()
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert stats["unet_dtype"] == f"torch.{dtype}" and stats["text_dtype"] == f"torch.{dtype}"
    assert result.info["dtype"] == dtype and result.info["steps"] == STEPS
    rse = name == "instructx2x"
    assert result.info["unet_evals"] == 3 * STEPS + (2 if rse else 0)
    assert (result.edit_mask is not None) == rse and (result.guidance_map is not None) == rse


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_rse_mask_semantics(edits, image, dtype):
    """Outside the binary mask the edit is the input, bit for bit; inside it changed; the mask is
    G >= tau of the returned guidance map, and lies within the effusion prior."""
    result, _ = edits["instructx2x", dtype]
    mask = result.edit_mask
    assert mask.shape == image.shape and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(mask, (result.guidance_map >= 0.1).float())
    outside = mask == 0
    assert 0.0 < mask.mean() < 1.0
    assert torch.equal(result.image[outside], image[outside])
    assert (result.image[~outside] - image[~outside]).abs().mean() > 1e-3
    assert result.info["pseudo_mask"]["findings"]


def test_bfloat16_edit_close_to_float32(edits):
    """bfloat16 runs the same code path; its edit stays close to the float32 one (values measured here
    are in the README)."""
    for name in ("instructx2x", "instructpix2pix"):
        a, b = edits[name, "float32"][0], edits[name, "bfloat16"][0]
        diff = (a.image - b.image).abs()
        spread = (a.image - a.image.mean()).abs().mean()
        print(f"\nfullsize bf16-vs-fp32 {name}: mean abs {diff.mean():.4f}, p99 {diff.quantile(0.99):.4f}, "
              f"fp32 image spread {spread:.4f}")
        assert diff.mean() < 0.25 * spread
        if a.edit_mask is not None:
            inter = (a.edit_mask * b.edit_mask).sum()
            union = ((a.edit_mask + b.edit_mask) > 0).sum()
            print(f"fullsize bf16-vs-fp32 mask IoU {inter / union:.3f}")
            assert inter / union > 0.9


def test_memory_estimate_against_cpu_peak(edits, sd15_dir):
    """ix2x.diffusion.memory's estimate of a float32 batch-1 edit against this process's peak resident
    memory during the edit: weights (faulted in before the edit) plus the edit's increase over them.
    The estimate is a lower bound within 50 %: on the CPU, oneDNN convolutions keep reordered copies
    of their inputs and outputs that the estimate (sized for CUDA) does not count."""
    from ix2x.diffusion.memory import estimate_for_folder

    est = estimate_for_folder(sd15_dir, 1, "float32", RES)
    _, stats = edits["instructx2x", "float32"]
    if stats["edit_activation_gb"] is None:
        pytest.skip("/proc/self/clear_refs is not writable here: the edit's own peak cannot be isolated")
    measured = est.weights / 2**30 + stats["edit_activation_gb"]
    print(f"\nfullsize memory: measured {measured:.2f} GB (activations {stats['edit_activation_gb']:.2f}) vs "
          f"estimate {est.total / 2**30:.2f} GB (activations {est.activations / 2**30:.2f})")
    assert 1.0 <= measured / (est.total / 2**30) <= 1.5
