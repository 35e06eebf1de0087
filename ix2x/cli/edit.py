"""``ix2x edit``: edit one radiograph with one instruction (the original's example script as a command)."""

from __future__ import annotations

import argparse

HELP = "edit one image with an instruction and write the edit (and the RSE guidance map)"
DESCRIPTION = """Edit IMAGE following INSTRUCTION with a registered editor and write the result as a
grayscale PNG. With --guidance-map, also write the RSE guidance map G as a red overlay on the input
(editors with RSE only). Editor settings come from the editor's Config, then --editor-arg."""
EXAMPLES = """examples:
  ix2x edit cxr.png "Add the finding of pleural effusion" --model models/diffusers/InstructX2X --out edited.png
  ix2x edit cxr.png "Remove the finding of edema" --editor instructx2x --model DIR --out e.png --guidance-map g.png
  ix2x edit cxr.png "Add the finding of edema" --editor instructpix2pix --model DIR --editor-arg steps=50
  ix2x edit cxr.png "Add the finding of edema" --model DIR --editor-arg tau=0.2 --device cuda
  ix2x edit cxr.png "Add the finding of edema" --editor roentgen --model builtin:phantom_t2i \
      --editor-arg prompt=dataset --target-report "Moderate edema." --source-report "No findings."
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE", help="input radiograph (PNG/JPEG 8 or 16 bit, DICOM)")
    p.add_argument("instruction", metavar="INSTRUCTION", help='e.g. "Add the finding of pleural effusion"')
    p.add_argument("--editor", default="instructx2x", help="registered editor name (default: instructx2x)")
    p.add_argument("--model", default=None, metavar="DIR", help="model folder (sets the editor's `model`)")
    p.add_argument("--out", default="edited.png", help="where to write the edit (default: edited.png)")
    p.add_argument("--guidance-map", default=None, metavar="PNG", help="write G as a red overlay here")
    p.add_argument("--editor-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="editor setting, e.g. steps=50 or tau=0.2 (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="the edit's seed (default: 0)")
    p.add_argument("--target-report", default=None, metavar="TEXT",
                   help="report of the study to produce, for editors with `prompt=dataset` (roentgen, diffedit, radedit)")
    p.add_argument("--source-report", default=None, metavar="TEXT", help="report of IMAGE (DiffEdit's source prompt)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ix2x import registry
    from ix2x.configs import build, parse_assignments
    from ix2x.errors import UserError
    from ix2x.images import load_image, save_image
    from ix2x.types import EditRequest

    image_path = Path(args.image)
    if not image_path.is_file():
        raise UserError(f"IMAGE {image_path} does not exist.")
    cls = registry.load("editor", args.editor)
    values = parse_assignments(args.editor_arg, flag="--editor-arg")
    if args.model is not None:
        values["model"] = args.model
    config = build(cls.Config, values, where=f"editor `{args.editor}`")
    if args.guidance_map and getattr(config, "tau", None) == 0:
        raise UserError(f"--guidance-map needs RSE, but editor `{args.editor}` runs with tau = 0. "
                        "Use --editor instructx2x or --editor-arg tau=0.1.")
    image = load_image(image_path, bit_depth="auto")  # a 16-bit PNG of 12-bit data is not black
    editor = cls(config)  # resolution unset: the model's native size (its unet and vae configs)
    if args.device:
        editor.to(args.device)
    result = editor.edit([EditRequest(image_path.stem, image, args.instruction, args.seed,
                                      source_report=args.source_report, target_report=args.target_report)])[0]
    save_image(args.out, result.image)
    print(f"edit: {args.out}")
    if args.guidance_map:
        if result.guidance_map is None:
            raise UserError(f"Editor `{args.editor}` returned no guidance map; the edit is in {args.out}.")
        _save_overlay(args.guidance_map, image, result.guidance_map)
        print(f"guidance map: {args.guidance_map}")
    info = result.info
    summary = {k: info[k] for k in ("steps", "resolution", "unet_calls", "edit_fraction", "device", "prompt")
               if k in info}
    print("  " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    for warning in info.get("warnings", []):
        print(f"  warning: {warning}")
    return 0


def _save_overlay(path: str, image, gmap) -> None:
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from ix2x.diffusion.rse import guidance_overlay

    rgb = guidance_overlay(image.float().cpu(), gmap.float().cpu())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(rgb.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)
