"""A small InstructPix2Pix-architecture model built from scratch (``model.init: small``).

Sizes that train on a 2-core CPU in about an hour are in ``training/configs/phantom_small.yaml`` and
measured on a 2-core CPU: a ~4 M-parameter UNet, a 4x-downsampling AutoencoderKL trained first on the
training images (minutes), a frozen random CLIP text encoder and a tokenizer whose merges spell each
word of the training instructions (so every word is one token; the vocabulary is saved with the model).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from ix2x.diffusion.tokenizer import word_tokenizer
from ix2x.training.editor_config import SmallModel

# The grammar's own words, so instructions outside the training set still tokenize word by word.
GRAMMAR_WORDS = ("add", "remove", "change", "the", "finding", "findings", "of", "level", "from", "to", "and",
                 "left", "right", "bilateral", "small", "mild", "moderate", "large", "severe")


def instruction_words(instructions: Sequence[str]) -> list[str]:
    words = {w for text in instructions for w in re.findall(r"[a-z]+", text.lower())}
    return sorted(words | set(GRAMMAR_WORDS))


def truncated_schedule(train_timesteps: int) -> dict:
    """Stable Diffusion's scaled-linear betas (0.00085 .. 0.012 over 1000 steps), first
    ``train_timesteps`` of them: same noise levels, so t here is t in SD's schedule."""
    a, b = math.sqrt(0.00085), math.sqrt(0.012)
    end = (a + (b - a) * (train_timesteps - 1) / 999) ** 2 if train_timesteps > 1 else 0.00085
    return dict(num_train_timesteps=train_timesteps, beta_start=0.00085, beta_end=end,
                beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def build(cfg: SmallModel, instructions: Sequence[str], resolution: int, seed: int):
    """(unet, vae, text_encoder, tokenizer, scheduler), random, deterministic for ``seed``."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = word_tokenizer(instruction_words(instructions), cfg.max_tokens)
    torch.manual_seed(seed)
    n_vae = len(cfg.vae_channels)
    factor = 2 ** (n_vae - 1)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=cfg.latent_channels, sample_size=resolution,
        block_out_channels=tuple(cfg.vae_channels), layers_per_block=1, norm_num_groups=cfg.norm_num_groups,
        down_block_types=("DownEncoderBlock2D",) * n_vae, up_block_types=("UpDecoderBlock2D",) * n_vae)
    n_unet = len(cfg.unet_channels)
    down = ("CrossAttnDownBlock2D",) * (n_unet - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n_unet - 1)
    unet = UNet2DConditionModel(
        sample_size=resolution // factor, in_channels=2 * cfg.latent_channels, out_channels=cfg.latent_channels,
        layers_per_block=cfg.layers_per_block, block_out_channels=tuple(cfg.unet_channels),
        down_block_types=down, up_block_types=up, cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.attention_head_dim, norm_num_groups=cfg.norm_num_groups)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.cross_attention_dim, intermediate_size=cfg.text_intermediate,
        num_attention_heads=cfg.text_heads, num_hidden_layers=cfg.text_layers,
        max_position_embeddings=cfg.max_tokens, projection_dim=cfg.cross_attention_dim,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    scheduler = DDIMScheduler(**truncated_schedule(cfg.train_timesteps))
    return unet, vae, text_encoder, tokenizer, scheduler


def train_vae(vae, images: Callable[[int, torch.Generator], torch.Tensor], cfg: SmallModel, seed: int,
              log: Callable[[str], None] = print) -> dict:
    """Fit ``vae`` as an autoencoder: L1 + MSE reconstruction of the posterior sample, plus
    ``vae_kl_weight`` x KL. ``images(step, gen)`` returns a (B, 3, R, R) batch in [-1, 1]. bf16
    autocast on the CPU is about 3x faster here (measured). Returns the final losses."""
    vae.train().requires_grad_(True)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.vae_steps) / cfg.vae_steps)))
    autocast = cfg.vae_precision == "bf16"
    t0, recent = time.time(), []
    for step in range(cfg.vae_steps):
        gen = torch.Generator("cpu").manual_seed(seed * 1_000_003 + step)
        x = images(step, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            post = vae.encode(x).latent_dist
            z = post.sample(generator=gen)
            rec = vae.decode(z).sample
        rec = rec.float()
        recon = (rec - x).abs().mean() + ((rec - x) ** 2).mean()
        loss = recon + cfg.vae_kl_weight * post.kl().float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        recent = (recent + [float((rec.detach() - x).abs().mean())])[-50:]
        if step % 100 == 0 or step == cfg.vae_steps - 1:
            log(f"vae step {step}/{cfg.vae_steps}: L1 {sum(recent) / len(recent):.4f} "
                f"({(time.time() - t0) / (step + 1):.2f} s/step)")
    vae.eval().requires_grad_(False)
    return {"vae_l1": sum(recent) / max(1, len(recent)), "vae_seconds": time.time() - t0}


@torch.no_grad()
def set_scaling_factor(vae, images: torch.Tensor) -> float:
    """Latent scaling so the scaled latents have unit standard deviation (Stable Diffusion's 0.18215
    rule, computed for this VAE)."""
    z = vae.encode(images).latent_dist.mode()
    factor = float(1.0 / z.float().std())
    vae.register_to_config(scaling_factor=factor)
    return factor


def save_folder(out: Path, unet, vae, text_encoder, tokenizer, scheduler) -> Path:
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())
