"""``ix2x convert``: an original LDM checkpoint (.ckpt) -> a diffusers model folder."""

from __future__ import annotations

import argparse

HELP = "convert an original InstructPix2Pix/InstructX2X .ckpt into a diffusers model folder"
DESCRIPTION = """Convert an LDM checkpoint (the training format of InstructPix2Pix and InstructX2X) into a
diffusers folder that --model accepts. Weights are read with torch.load(weights_only=True) (or from
.safetensors). Architecture configs and the tokenizer come from --config, a diffusers folder of the same
architecture (default: timbrooks/instruct-pix2pix from the local Hugging Face cache, or the hub when
online; only its JSON and text files are needed)."""
EXAMPLES = """examples:
  ix2x convert ckpt/instructx2x.ckpt --out models/diffusers/InstructX2X
  ix2x convert last.ckpt --out DIR --config /models/instruct-pix2pix --no-ema
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ckpt", metavar="CKPT", help="LDM checkpoint (.ckpt, .pt or .safetensors)")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder for the diffusers model")
    p.add_argument("--config", default=None, metavar="DIR_OR_HUB_ID",
                   help="diffusers folder (or hub id) giving configs and tokenizer (default: timbrooks/instruct-pix2pix)")
    p.add_argument("--no-ema", action="store_true", help="take the non-EMA weights when the checkpoint has both")


def run(args: argparse.Namespace) -> int:
    from ix2x.diffusion.convert import DEFAULT_CONFIG, convert_ckpt

    out = convert_ckpt(args.ckpt, args.out, config=args.config or DEFAULT_CONFIG, extract_ema=not args.no_ema)
    print(f"converted {args.ckpt} -> {out} (load it with --model {out})")
    return 0
