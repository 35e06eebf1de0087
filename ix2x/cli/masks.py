"""``ix2x masks``: build RSE pseudo-mask priors from MS-CXR boxes."""

from __future__ import annotations

import argparse

HELP = "build pseudo-mask priors (union masks and density priors) from MS-CXR boxes"
DESCRIPTION = """Build RSE's anatomical priors from MS-CXR bounding boxes on PA views (MIMIC-CXR
metadata decides the view). Writes, per finding, the original format pseudo_mask_{Name}.npy (uint8
{0,1}, the union of the boxes) and density_prior_{Name}.npy (float32 in [0,1], how many images' boxes
cover each pixel, divided by the maximum). Use them with mask source DIR or density:DIR."""
EXAMPLES = """examples:
  ix2x masks build --ms-cxr MS_CXR_Local_Alignment_v1.1.0.csv \\
      --metadata mimic-cxr-2.0.0-metadata.csv.gz --out masks/ms_cxr
  ix2x masks build --ms-cxr boxes.csv --metadata meta.csv --out masks/256 --size 256
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="masks_action", metavar="ACTION")
    b = sub.add_parser("build", help="build priors from MS-CXR boxes", description=DESCRIPTION,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--ms-cxr", required=True, metavar="CSV",
                   help="MS-CXR boxes (dicom_id, category_name, x, y, w, h, image_width, image_height)")
    b.add_argument("--metadata", required=True, metavar="CSV",
                   help="MIMIC-CXR metadata with dicom_id and ViewPosition (.csv or .csv.gz)")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder")
    b.add_argument("--size", type=int, default=512, help="mask size in pixels (default: 512, as the original)")
    p.set_defaults(_print_help=p.print_help)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "masks_action", None) != "build":
        args._print_help()
        return 2
    from ix2x.data.masks import build_masks_from_ms_cxr

    report = build_masks_from_ms_cxr(args.ms_cxr, args.metadata, args.out, size=args.size)
    print(report.format())
    if not report.written:
        print("no masks written: no usable PA boxes")
        return 1
    print(f"masks in {args.out}")
    return 0
