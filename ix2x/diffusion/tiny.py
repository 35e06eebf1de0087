"""Tiny random InstructPix2Pix-architecture models for tests and benchmarks.

The factory writes a complete diffusers folder (``model_index.json``, ``unet/``, ``vae/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``) with ``save_pretrained`` so that the real loading
code (:mod:`ix2x.diffusion.loading`) reads it back. Nothing is downloaded: the tokenizer is a small
byte-level BPE trained with the ``tokenizers`` library on a few instruction phrases, so it has a real
vocabulary (the offline "2-token tokenizer" trap of ``CLIPTokenizer.from_pretrained`` cannot hide here).
"""

from __future__ import annotations

from pathlib import Path

# Phrases in the instruction grammar; enough for BPE to learn words that distinguish instructions.
PHRASES = (
    "Add the finding of pleural effusion.",
    "Remove the finding of cardiomegaly.",
    "Change the level of edema from mild to moderate.",
    "Add the findings of atelectasis, consolidation and pneumothorax.",
    "Remove the findings of lung opacity and pneumonia.",
    "left right bilateral small mild moderate large severe",
)
MAX_TOKENS = 32


def make_tokenizer(max_length: int = MAX_TOKENS):
    """A word-level CLIPTokenizer for the words of :data:`PHRASES` (see :mod:`ix2x.diffusion.tokenizer`)."""
    import re

    from ix2x.diffusion.tokenizer import word_tokenizer

    return word_tokenizer(sorted({w for p in PHRASES for w in re.findall(r"[a-z]+", p.lower())}), max_length)


def make_components(seed: int = 0, image_size: int = 64, *, vae_blocks: int = 3):
    """(unet, vae, text_encoder, tokenizer, scheduler): random, tiny, deterministic for ``seed``.

    The VAE downsamples by ``2 ** (vae_blocks - 1)`` (4x by default, so 64 px images give 16x16 latents).
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    factor = 2 ** (vae_blocks - 1)
    unet = UNet2DConditionModel(
        sample_size=image_size // factor, in_channels=8, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
        norm_num_groups=16)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=image_size, norm_num_groups=8,
        block_out_channels=(16,) * (vae_blocks - 1) + (32,), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * vae_blocks, up_block_types=("UpDecoderBlock2D",) * vae_blocks)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=MAX_TOKENS, projection_dim=32,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    # Stable Diffusion's schedule (what InstructPix2Pix and InstructX2X were trained with).
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    for module in (unet, vae, text_encoder):
        module.eval()
    return unet, vae, text_encoder, tokenizer, scheduler


def make_tiny_model(out_dir: str | Path, seed: int = 0, image_size: int = 64) -> Path:
    """Write a tiny random InstructPix2Pix model as a diffusers folder at ``out_dir``; return the path."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    unet, vae, text_encoder, tokenizer, scheduler = make_components(seed, image_size)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    out = Path(out_dir)
    pipe.save_pretrained(out, safe_serialization=True)
    return out
