"""``ix2x train``: fine-tune or train an InstructPix2Pix-architecture editor (``training/``)."""

from __future__ import annotations

import argparse

HELP = "train an InstructPix2Pix-architecture editor (InstructX2X recipe, or a small model from scratch)"
DESCRIPTION = """Fine-tune an InstructPix2Pix-architecture model on a MIMIC-EDIT-INSTRUCTION folder (or
phantoms): past image as conditioning, current image as target. The config (YAML) holds every setting;
the defaults are the original InstructX2X recipe. Writes OUT/model (a diffusers folder the editors
load with `--editor-arg model=OUT/model`), OUT/checkpoints (full state for --resume),
OUT/validation/*.png and OUT/log.csv. Several GPUs or nodes: `accelerate launch -m ix2x train ...`."""
EXAMPLES = """examples:
  ix2x train --config training/configs/instructx2x.yaml --data DIR --out runs/ix2x
  accelerate launch --num_processes 8 -m ix2x train --config training/configs/instructx2x.yaml --data DIR --out runs/ix2x
  ix2x train --config training/configs/phantom_small.yaml --out runs/phantom_small        CPU, about an hour
  ix2x train --config training/configs/phantom_small.yaml --out runs/phantom_small --resume runs/phantom_small
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="YAML",
                   help="training config (built-in: training/configs/*.yaml; a bare name is looked up there)")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/<config name>)")
    p.add_argument("--data", metavar="DIR", help="override data.path (a MIMIC-EDIT-INSTRUCTION folder, or "
                   "where phantoms are generated)")
    p.add_argument("--resume", metavar="DIR", help="a checkpoint folder, or a run folder (its latest checkpoint)")
    p.add_argument("--max-steps", type=int, metavar="N", help="override max_steps")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from ix2x.errors import UserError
    from ix2x.training.editor_config import configs_dir, load_config

    path = Path(args.config)
    if not path.is_file() and (configs_dir() / path.name).is_file():
        path = configs_dir() / path.name
    elif not path.is_file() and (configs_dir() / f"{path.name}.yaml").is_file():
        path = configs_dir() / f"{path.name}.yaml"
    config = load_config(path)
    if args.data:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=args.data))
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {args.max_steps}.")
    from ix2x.training.editor_train import train

    out = Path(args.out) if args.out else Path("runs") / config.name
    model = train(config, out, resume=args.resume, max_steps=args.max_steps)
    print(f"model: {model}")
    return 0
