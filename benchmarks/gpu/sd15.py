"""Random weights in the exact SD 1.5 InstructPix2Pix architecture, saved as a diffusers folder.

What ``timbrooks/instruct-pix2pix`` ships, minus the trained weights: a UNet with 8 input channels
(noisy latents + image latents), the SD VAE, a CLIP ViT-L/14 text encoder and a CLIP-sized tokenizer
(49,408 tokens in ``tokenizer/vocab.json`` + ``merges.txt``, the files the real folder holds). Nothing is
downloaded. The configs spell out every architecture field of the real folder's config files, so a
field that diffusers' defaults change later cannot silently change the architecture.

The tokenizer's merges are constructed, not learned: first merges that make every word of the
instruction grammar one token, then letter n-grams in a fixed order until the vocabulary has CLIP's
size. Same bytes on every run and machine (``tokenizers``' trainer breaks ties differently across
processes).
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

# Published sizes of the SD 1.5 components (Stable Diffusion v1 model card; CLIP ViT-L/14 text tower).
# The InstructPix2Pix UNet has 4 more input channels on conv_in: 4 * 320 * 3 * 3 = 11,520 weights.
PARAMS = {"unet": 859_520_964 + 4 * 320 * 9, "vae": 83_653_863, "text_encoder": 123_060_480}
VOCAB_SIZE = 49_408
MAX_TOKENS = 77

UNET = dict(
    sample_size=64, in_channels=8, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[320, 640, 1280, 1280], layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768, attention_head_dim=8)
VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=512, act_fn="silu", norm_num_groups=32,
    block_out_channels=[128, 256, 512, 512], layers_per_block=2, scaling_factor=0.18215,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
TEXT = dict(
    vocab_size=VOCAB_SIZE, hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
    max_position_embeddings=MAX_TOKENS, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    bos_token_id=0, eos_token_id=2, pad_token_id=1)
# instruct-pix2pix's scheduler_config.json.
SCHEDULER = dict(_class_name="EulerAncestralDiscreteScheduler", beta_start=0.00085, beta_end=0.012,
                 beta_schedule="scaled_linear", num_train_timesteps=1000, steps_offset=1,
                 prediction_type="epsilon", trained_betas=None)


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's byte alphabet, in CLIP's order (printable bytes first)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def grammar_words() -> list[str]:
    """Every lowercase word of the instruction grammar (ops, findings and their synonyms, levels, sides)."""
    import re

    from ix2x.data import findings

    data = {k: v for k, v in vars(findings).items() if not k.startswith("_") and isinstance(v, (str, tuple, list, dict))}
    text = json.dumps(data, default=str)
    words = set(re.findall(r"[a-z]+", text.lower()))
    from ix2x.diffusion.tiny import PHRASES

    words |= set(re.findall(r"[a-z]+", " ".join(PHRASES).lower()))
    return sorted(w for w in words if len(w) > 1)


def clip_sized_vocab(size: int = VOCAB_SIZE) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) laid out as CLIP's: 256 byte tokens, 256 end-of-word byte tokens, one token per
    merge, then ``<|startoftext|>`` and ``<|endoftext|>`` (ids 49406 and 49407 at CLIP's size)."""
    from ix2x.diffusion.tokenizer import _bpe

    alphabet = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for token in [*alphabet, *(c + "</w>" for c in alphabet)]:
        vocab.setdefault(token, len(vocab))
    n_merges = size - len(vocab) - 2
    ranks: dict[tuple[str, str], int] = {}

    def add(left: str, right: str) -> bool:
        if len(ranks) >= n_merges or (left, right) in ranks or left + right in vocab:
            return len(ranks) < n_merges
        ranks[(left, right)] = len(ranks)
        vocab[left + right] = len(vocab)
        return len(ranks) < n_merges

    for word in grammar_words():
        while len(pieces := _bpe(word, ranks)) > 1 and len(ranks) < n_merges:
            left = pieces[0]
            for right in pieces[1:]:
                add(left, right)
                left += right
    letters = string.ascii_lowercase
    frontier = list(letters)
    while len(ranks) < n_merges:  # letter n-grams: "ab", "ab</w>", then "abc", "abc</w>", ...
        nxt = []
        for stem in frontier:
            for c in letters:
                if not (add(stem, c) and add(stem, c + "</w>")):
                    break
                nxt.append(stem + c)
            if len(ranks) >= n_merges:
                break
        frontier = nxt
    for token in ("<|startoftext|>", "<|endoftext|>"):
        vocab[token] = len(vocab)
    return vocab, sorted(ranks, key=ranks.get)


def write_tokenizer(folder: str | Path) -> Path:
    """``folder`` gets vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json (the files
    of the real ``tokenizer/``), loadable with ``CLIPTokenizer.from_pretrained``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_sized_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
                                       encoding="utf-8")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "CLIPTokenizer", "model_max_length": MAX_TOKENS, "do_lower_case": True, **special}))
    return folder


def _write_config(folder: Path, name: str, config: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(config, indent=2))


def make_sd15_model(out_dir: str | Path, seed: int = 0, *, dtype: str = "float32") -> Path:
    """Write a random SD 1.5 InstructPix2Pix diffusers folder at ``out_dir`` (about 4.3 GB in float32,
    2.1 GB in float16/bfloat16); return it. One component at a time is in memory (peak about 3.5 GB)."""
    import gc

    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ix2x.diffusion.loading import parse_dtype

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch_dtype = parse_dtype(dtype)
    write_tokenizer(out / "tokenizer")
    _write_config(out / "scheduler", "scheduler_config.json", SCHEDULER)
    torch.manual_seed(seed)
    for sub, build in (("unet", lambda: UNet2DConditionModel(**UNET)), ("vae", lambda: AutoencoderKL(**VAE)),
                       ("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**TEXT)))):
        module = build()
        if torch_dtype != torch.float32:
            module = module.to(torch_dtype)
        module.save_pretrained(out / sub, safe_serialization=True)
        del module
        gc.collect()
    index = {"_class_name": "StableDiffusionInstructPix2PixPipeline", "_diffusers_version": _version("diffusers"),
             "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
             "scheduler": ["diffusers", SCHEDULER["_class_name"]], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    _write_config(out, "model_index.json", index)
    return out


def write_ldm_checkpoint(model_dir: str | Path, path: str | Path, *, half: bool = False) -> Path:
    """The original LDM ``.ckpt`` (``{"state_dict": ...}``, keys as the InstructPix2Pix training code names
    them) of the diffusers folder ``model_dir``, via :func:`ix2x.diffusion.convert.to_ldm_state_dict`.
    ``half``: float16 tensors, as the "-fp16" checkpoints people share (half the memory to convert)."""
    import torch

    from ix2x.diffusion.convert import to_ldm_state_dict
    from ix2x.diffusion.loading import load_components

    c = load_components(model_dir)
    sd = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
          for k, v in to_ldm_state_dict(c.unet, c.vae, c.text_encoder).items()}
    del c
    torch.save({"state_dict": sd}, path)
    return Path(path)


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)
