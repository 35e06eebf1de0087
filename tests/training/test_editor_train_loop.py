"""``ix2x train`` on the tiny config (CPU, seconds): loss, checkpoints, exact resume, editor loading."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from ix2x.training.editor_config import configs_dir, load_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny config with its phantom data generated once for the module."""
    from ix2x.training.editor_train import prepare_data

    root = tmp_path_factory.mktemp("tiny_data")
    cfg = load_config(configs_dir() / "tiny.yaml")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(root / "phantoms")))
    prepare_data(cfg, log=lambda _m: None)
    return cfg


def _checkpoint_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """The raw UNet weights accelerate saved in a checkpoint folder (safetensors, or the .bin fallback)."""
    if (ckpt / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(ckpt / "model.safetensors")
    return torch.load(ckpt / "pytorch_model.bin", weights_only=True)


def _losses(run: Path) -> dict[int, float]:
    with open(run / "log.csv") as fh:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def full_run(tiny, tmp_path_factory):
    from ix2x.training.editor_train import train

    out = tmp_path_factory.mktemp("full")
    train(tiny, out, max_steps=6, log=lambda _m: None)
    return out


def test_loss_finite_and_decreasing_on_a_fixed_batch(tiny):
    from ix2x.training import small_model
    from ix2x.training.editor_data import EditPairs, batch_indices
    from ix2x.training.editor_train import TextEncoder, encode_pixels, micro_loss
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

    # The run ends at step 6, which checkpoints (accelerate state + the EMA registered for checkpointing,
    # saved as custom_checkpoint_0.pkl: EMAModel.state_dict(), plain tensors and scalars) and exports.
    ckpt = full_run / "checkpoints" / "step_000006"
    assert json.loads((full_run / "model" / "training.json").read_text())["step"] == 6
    ema = torch.load(ckpt / "custom_checkpoint_0.pkl", weights_only=True)
    assert ema["optimization_step"] == 6 and ema["decay"] == tiny.ema_decay
    raw = _checkpoint_weights(ckpt)  # the raw (non-EMA) training weights at the same step

    exported = UNet2DConditionModel.from_pretrained(full_run / "model" / "unet")
    init = UNet2DConditionModel.from_pretrained(full_run / "init" / "unet")
    named = list(exported.named_parameters())
    # EMAModel keeps shadow_params in unet.parameters() order, the order named_parameters() also follows.
    assert len(named) == len(ema["shadow_params"]) == len(raw) > 0
    assert sorted(n for n, _ in named) == sorted(raw)
    for (name, p), shadow in zip(named, ema["shadow_params"]):
        assert torch.equal(p, shadow), name  # exported == EMA, bit for bit
    assert any(not torch.equal(p, raw[n]) for n, p in named)  # ... and not the raw training weights
    assert any(not torch.equal(a, b) for a, b in zip(exported.parameters(), init.parameters()))  # trained


def test_resume_continues_with_identical_losses(tiny, full_run, tmp_path):
    from ix2x.training.editor_train import train

    out = tmp_path / "resumed"
    train(tiny, out, max_steps=4, log=lambda _m: None)
    assert _losses(out) == {k: v for k, v in _losses(full_run).items() if k <= 4}
    train(tiny, out, max_steps=6, resume=out, log=lambda _m: None)
    assert _losses(out) == _losses(full_run)  # steps 5 and 6 bit-identical to the uninterrupted run
    a = _checkpoint_weights(out / "checkpoints/step_000006")
    b = _checkpoint_weights(full_run / "checkpoints/step_000006")
    assert len(a) > 0 and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # resumed UNet weights bit-identical
    ema_a = torch.load(out / "checkpoints/step_000006/custom_checkpoint_0.pkl", weights_only=True)
    ema_b = torch.load(full_run / "checkpoints/step_000006/custom_checkpoint_0.pkl", weights_only=True)
    assert len(ema_a["shadow_params"]) == len(ema_b["shadow_params"]) > 0
    assert all(torch.equal(x, y) for x, y in zip(ema_a["shadow_params"], ema_b["shadow_params"]))  # and the EMA


def test_instructx2x_editor_edits_with_the_trained_model(full_run):
    from ix2x.editors.instructx2x import InstructX2X
    from ix2x.types import EditRequest

    editor = InstructX2X(InstructX2X.Config(model=str(full_run / "model"), steps=3, resolution=32)).to("cpu")
    image = torch.rand(1, 40, 40)
    [res] = editor.edit([EditRequest("a", image, "Add the finding of left pleural effusion.", seed=0)])
    assert res.image.shape == (1, 40, 40) and torch.isfinite(res.image).all()
    assert res.guidance_map is not None and res.guidance_map.shape == (1, 40, 40)
    # Outside the RSE mask the input is copied exactly.
    outside = res.edit_mask == 0
    assert outside.any()  # the RSE mask leaves something out, so the check below is not vacuous
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
