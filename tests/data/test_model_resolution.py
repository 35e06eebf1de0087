"""A model folder declares its native resolution (diffusers' own definition) and editors default to it."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ix2x.diffusion.loading import DEFAULT_RESOLUTION, native_resolution


@pytest.mark.parametrize("image_size,vae_blocks", [(64, 3), (32, 2)])  # 4x and 2x VAEs
def test_native_resolution_is_what_the_diffusers_pipeline_defaults_to(tmp_path, image_size, vae_blocks):
    from diffusers import StableDiffusionInstructPix2PixPipeline

    from ix2x.diffusion.tiny import make_components

    unet, vae, text_encoder, tokenizer, scheduler = make_components(image_size=image_size, vae_blocks=vae_blocks)
    StableDiffusionInstructPix2PixPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                           scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                           requires_safety_checker=False).save_pretrained(tmp_path / "m")
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(tmp_path / "m")
    # diffusers' pipelines default to height = unet.config.sample_size * vae_scale_factor
    expected = pipe.unet.config.sample_size * pipe.vae_scale_factor
    assert native_resolution(tmp_path / "m") == expected == image_size


def test_shipped_model_and_missing_folders():
    import json
    from pathlib import Path

    import ix2x

    folder = Path(ix2x.__file__).parent / "models" / "phantom_ix2x"
    unet = json.loads((folder / "unet" / "config.json").read_text())
    vae = json.loads((folder / "vae" / "config.json").read_text())
    assert native_resolution("builtin:phantom_ix2x") == unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1) == 128
    assert native_resolution("/nowhere/model") is None
    assert native_resolution("timbrooks/instruct-pix2pix") in (None, 512)  # only if in the local cache

    from ix2x.editors.instructx2x import InstructX2X

    assert InstructX2X(InstructX2X.Config(model="builtin:phantom_ix2x")).config.resolution == 128
    assert InstructX2X(InstructX2X.Config(model="/nowhere/model")).config.resolution == DEFAULT_RESOLUTION
    assert InstructX2X(InstructX2X.Config(model="builtin:phantom_ix2x", resolution=64)).config.resolution == 64


@pytest.mark.slow  # 2 steps, but a fresh process imports the diffusion stack (~45 s on 2 shared cores)
def test_edit_cli_with_the_shipped_model_runs_at_its_resolution_without_a_flag(tmp_path, real_cxr_dir):
    src = tmp_path / "x.png"
    Image.open(real_cxr_dir / "instructx2x_example.jpg").convert("L").save(src)
    out = tmp_path / "e.png"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "ix2x", "edit", str(src), "Add the finding of pleural effusion",
                           "--model", "builtin:phantom_ix2x", "--out", str(out), "--editor-arg", "steps=2",
                           "--device", "cpu"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resolution=128" in done.stdout
    assert np.asarray(Image.open(out)).shape == (512, 512)  # returned at the input's size
