"""``ix2x train`` on the tiny config (CPU, seconds): loss, checkpoints, exact resume, editor loading."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch

from training.editor_config import configs_dir, load_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny config with its phantom data generated once for the module."""
    from training.editor_train import prepare_data

    root = tmp_path_factory.mktemp("tiny_data")
    cfg = load_config(configs_dir() / "tiny.yaml")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(root / "phantoms")))
    prepare_data(cfg, log=lambda _m: None)
    return cfg


def _losses(run: Path) -> dict[int, float]:
    with open(run / "log.csv") as fh:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def full_run(tiny, tmp_path_factory):
    from training.editor_train import train

    out = tmp_path_factory.mktemp("full")
    train(tiny, out, max_steps=6, log=lambda _m: None)
    return out


def test_loss_finite_and_decreasing_on_a_fixed_batch(tiny):
    from training import small_model
    from training.editor_data import EditPairs, batch_indices
    from training.editor_train import TextEncoder, encode_pixels, micro_loss
    from diffusers import DDPMScheduler

    data = EditPairs(tiny.data.path, "train", tiny.data.resolution)
    unet, vae, te, tok, sched = small_model.build(tiny.model.small, data.instructions, tiny.data.resolution, 0)
    noise_scheduler = DDPMScheduler.from_config(sched.config)
    text = TextEncoder(te, tok, cache=True)
    batch = data.batch(batch_indices(len(data), 0, 0, 8), torch.Generator().manual_seed(0), rotation=0, hflip=0)
    target, image = encode_pixels(vae, batch, torch.Generator().manual_seed(1), "cpu", torch.float32)
    emb, null = text(batch.prompts), text([""])
    unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = micro_loss(unet, noise_scheduler, target, image, emb, torch.Generator().manual_seed(2), 0.0, null, 700)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses


def test_run_writes_model_checkpoints_log_and_validation(full_run):
    from ix2x.diffusion.loading import load_components, missing_files

    assert missing_files(full_run / "model") == []
    assert sorted(p.name for p in (full_run / "checkpoints").glob("step_*")) == ["step_000004", "step_000006"]
    assert sorted(p.name for p in (full_run / "validation").glob("*.png")) == ["step_000004.png", "step_000006.png"]
    losses = _losses(full_run)
    assert sorted(losses) == [1, 2, 3, 4, 5, 6] and all(map(torch.isfinite, torch.tensor(list(losses.values()))))
    c = load_components(full_run / "model")
    assert c.scheduler_config["num_train_timesteps"] == 700
    assert len(c.tokenizer) > 2


def test_exported_unet_is_the_ema(full_run, tiny):
    """The exported UNet is the EMA of the training weights, which the checkpoint also holds."""
    from diffusers import UNet2DConditionModel

    exported = UNet2DConditionModel.from_pretrained(full_run / "model" / "unet")
    raw = UNet2DConditionModel.from_pretrained(full_run / "init" / "unet")
    differs = any(not torch.equal(a, b) for a, b in zip(exported.parameters(), raw.parameters()))
    assert differs  # trained, not the initial weights


def test_resume_continues_with_identical_losses(tiny, full_run, tmp_path):
    from training.editor_train import train

    out = tmp_path / "resumed"
    train(tiny, out, max_steps=4, log=lambda _m: None)
    assert _losses(out) == {k: v for k, v in _losses(full_run).items() if k <= 4}
    train(tiny, out, max_steps=6, resume=out, log=lambda _m: None)
    assert _losses(out) == _losses(full_run)  # steps 5 and 6 bit-identical to the uninterrupted run
    a = torch.load(out / "checkpoints/step_000006/pytorch_model.bin", weights_only=True) \
        if (out / "checkpoints/step_000006/pytorch_model.bin").exists() else None
    if a is None:
        from safetensors.torch import load_file

        a = load_file(out / "checkpoints/step_000006/model.safetensors")
        b = load_file(full_run / "checkpoints/step_000006/model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_instructx2x_editor_edits_with_the_trained_model(full_run):
    from editors.instructx2x import InstructX2X
    from ix2x.types import EditRequest

    editor = InstructX2X(InstructX2X.Config(model=str(full_run / "model"), steps=3, resolution=32)).to("cpu")
    image = torch.rand(1, 40, 40)
    [res] = editor.edit([EditRequest("a", image, "Add the finding of left pleural effusion.", seed=0)])
    assert res.image.shape == (1, 40, 40) and torch.isfinite(res.image).all()
    assert res.guidance_map is not None and res.guidance_map.shape == (1, 40, 40)
    # Outside the RSE mask the input is copied exactly.
    outside = res.edit_mask == 0
    assert torch.equal(res.image[outside], image[outside])


def test_cli_train_resume_and_errors(tiny, tmp_path, capsys):
    from ix2x.cli.main import main

    assert main(["train", "--config", "tiny", "--data", tiny.data.path, "--out", str(tmp_path / "r"),
                 "--max-steps", "2"]) == 0
    assert (tmp_path / "r" / "model" / "model_index.json").is_file()
    assert main(["train", "--config", "nonexistent.yaml", "--out", str(tmp_path / "x")]) == 2
    assert "tiny.yaml" in capsys.readouterr().err
    assert main(["train", "--config", "tiny", "--data", tiny.data.path, "--out", str(tmp_path / "y"),
                 "--resume", str(tmp_path / "nothing")]) == 2
    assert "--resume" in capsys.readouterr().err
