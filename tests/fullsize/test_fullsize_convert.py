"""The original LDM checkpoint of the full-size model converts with `ix2x convert` (diffusers'
single-file conversion functions) and loads through the real loader. The checkpoint is float16, as
the shared "-fp16" ones are (converting a float32 one needs about 2 GB more). Each heavy step runs in
its own process, so this process never holds two copies of the model."""

import json
import os
import resource
import subprocess
import sys
import time

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.fullsize]


def _run(args, cwd):
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc, time.perf_counter() - t0


def test_ldm_checkpoint_converts_and_loads(sd15_dir, tmp_path, repo_root):
    from safetensors import safe_open

    from ix2x.diffusion.loading import load_components

    ckpt, out = tmp_path / "instructx2x-fp16.ckpt", tmp_path / "converted"
    _, write_s = _run([sys.executable, "-c", "import sys; from ix2x.benchmarks.gpu.sd15 import write_ldm_checkpoint; "
                       "write_ldm_checkpoint(sys.argv[1], sys.argv[2], half=True)", str(sd15_dir), str(ckpt)], repo_root)
    sd = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["state_dict"]
    assert sd["model.diffusion_model.input_blocks.0.0.weight"].shape == (320, 8, 3, 3)  # LDM names, 8 channels
    assert sd["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"].shape == (49_408, 768)
    del sd
    proc, convert_s = _run([sys.executable, "-m", "ix2x", "convert", str(ckpt), "--out", str(out),
                            "--config", str(sd15_dir)], repo_root)
    assert "converted" in proc.stdout
    children_peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20

    c = load_components(out)
    assert c.unet.config.in_channels == 8 and len(c.tokenizer) == 49_408
    assert c.unet.dtype == torch.float32 and c.scheduler_config["_class_name"] == "EulerAncestralDiscreteScheduler"
    del c
    # Every converted tensor equals the original one rounded to float16 (read lazily, one at a time).
    for sub, name in (("unet", "diffusion_pytorch_model.safetensors"), ("vae", "diffusion_pytorch_model.safetensors"),
                      ("text_encoder", "model.safetensors")):
        with safe_open(sd15_dir / sub / name, "pt") as a, safe_open(out / sub / name, "pt") as b:
            assert set(a.keys()) == set(b.keys()), sub
            for key in a.keys():
                ref = a.get_tensor(key)
                assert torch.equal(b.get_tensor(key), ref.half().to(ref.dtype)), (sub, key)
    print("\nfullsize convert", json.dumps({"write_ckpt_s": round(write_s, 1), "convert_s": round(convert_s, 1),
                                            "children_peak_rss_gb": round(children_peak_gb, 2),
                                            "ckpt_gb": round(ckpt.stat().st_size / 2**30, 2)}))
