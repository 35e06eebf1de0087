"""Tiny random text-to-image and BERT-encoder models for tests, saved in the published folder layouts so the
real loading code (:mod:`ix2x.diffusion.folders`) reads them: a diffusers Stable Diffusion folder
(RoentGen, DiffEdit), RadEdit's parts (``unet/``, an SDXL-VAE-style ``vae/``, a BERT ``text_encoder/`` with
its tokenizer, optionally declaring remote code like BioViL-T), and an InstructPix2Pix folder with a BERT
text encoder (BiomedJourney)."""

from __future__ import annotations

import json
from pathlib import Path

from ix2x.diffusion.tiny import PHRASES, make_components

BERT_WORDS = sorted({w.strip(".,").lower() for p in PHRASES for w in p.split()} | {"no", "new", "resolved", "now", "was"})


def _unet(in_channels: int, cross: int, image_size: int, factor: int = 4):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=image_size // factor, in_channels=in_channels, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=cross, attention_head_dim=8,
        norm_num_groups=16).eval()


def make_tiny_t2i(out_dir: str | Path, seed: int = 0, image_size: int = 64) -> Path:
    """A tiny random StableDiffusionPipeline folder (CLIP text encoder, DDIM schedule)."""
    import torch
    from diffusers import StableDiffusionPipeline

    _, vae, text_encoder, tokenizer, scheduler = make_components(seed, image_size)
    torch.manual_seed(seed + 1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=_unet(4, 32, image_size), scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    return Path(out_dir)


def make_bert(out_dir: str | Path, seed: int = 0, *, remote_code: bool = False, max_length: int = 16):
    """A tiny random BERT encoder + WordPiece tokenizer at ``out_dir`` (transformers layout). With
    ``remote_code`` the folder declares a model class in its own Python file (``auto_map``), as BioViL-T's does;
    the file subclasses BertModel, so trusting it loads the same weights."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BERT_WORDS, "."]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(out / "vocab.txt"), do_lower_case=True, model_max_length=max_length)
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=37, max_position_embeddings=64), add_pooling_layer=False).eval()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    if remote_code:
        (out / "modeling_tinycxrbert.py").write_text(
            "from transformers import BertModel\n\n\nclass TinyCXRBertModel(BertModel):\n"
            "    \"\"\"Stands in for BioViL-T's CXRBertModel (remote code).\"\"\"\n")
        config = json.loads((out / "config.json").read_text())
        config["auto_map"] = {"AutoModel": "modeling_tinycxrbert.TinyCXRBertModel"}
        (out / "config.json").write_text(json.dumps(config, indent=2))
    return model, tok


def make_tiny_radedit(out_dir: str | Path, seed: int = 0, image_size: int = 64, *, remote_code: bool = True) -> Path:
    """RadEdit's published parts in one folder: ``unet/`` + ``scheduler/`` (microsoft/radedit), ``vae/``
    (stabilityai/sdxl-vae's layout: config.json + diffusion_pytorch_model.safetensors) and
    ``text_encoder/`` (microsoft/BiomedVLP-BioViL-T's layout: BERT weights, WordPiece tokenizer, auto_map)."""
    import torch

    out = Path(out_dir)
    _, vae, _, _, scheduler = make_components(seed, image_size)
    torch.manual_seed(seed + 2)
    _unet(4, 32, image_size).save_pretrained(out / "unet", safe_serialization=True)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    scheduler.save_pretrained(out / "scheduler")
    make_bert(out / "text_encoder", seed, remote_code=remote_code)
    return out


def make_tiny_bert_pix2pix(out_dir: str | Path, seed: int = 0, image_size: int = 64) -> Path:
    """A tiny InstructPix2Pix folder whose text encoder is BERT (BiomedJourney's architecture family)."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    unet, vae, _, _, scheduler = make_components(seed, image_size)
    encoder, tok = make_bert(Path(out_dir) / "_bert", seed)
    pipe = StableDiffusionInstructPix2PixPipeline(vae=vae, text_encoder=encoder, tokenizer=tok, unet=unet,
                                                  scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                                  requires_safety_checker=False)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    import shutil

    shutil.rmtree(Path(out_dir) / "_bert")
    return Path(out_dir)
