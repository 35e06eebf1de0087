"""``ix2x phantom``: write a phantom dataset (MIMIC-EDIT-INSTRUCTION layout plus masks and labels)."""

from __future__ import annotations

import argparse

HELP = "generate phantom chest radiograph pairs with exact change masks and labels"
DESCRIPTION = """Generate procedural PA chest radiograph pairs (past and current study of one synthetic
patient) that differ only by the instructed change, in the MIMIC-EDIT-INSTRUCTION layout:
instructions.csv (with extra columns: subject, masks, sex / age / habitus, findings before and
after, ops), past/, current/, masks/ and phantom.json. Same seed, same bytes."""
EXAMPLES = """examples:
  ix2x phantom --out ph --n 200 --seed 0
  ix2x phantom --out ph128 --n 1000 --size 128 --quiet
  ix2x phantom --out ph-jitter --n 200 --jitter        pose/exposure differences (aligned=0)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must be empty or new)")
    p.add_argument("--n", type=int, default=200, help="number of pairs (one subject each; default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--jitter", action="store_true",
                   help="small pose and exposure differences between the studies (masks then approximate)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty DIR (files of the same names are replaced, others kept)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from ix2x.errors import UserError

    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder. Pick a new folder name.")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UserError(f"--out {out} is not empty. Pick a new folder, or pass --force to write into it.")
    if args.n < 1:
        raise UserError(f"--n must be a positive integer, got {args.n}.")
    if args.size < 32:
        raise UserError(f"--size must be at least 32, got {args.size}.")
    from ix2x.data.phantom import generate

    start = time.perf_counter()
    generate(out, n=args.n, seed=args.seed, size=args.size, jitter=args.jitter, progress=not args.quiet)
    seconds = time.perf_counter() - start
    if not args.quiet:
        print(f"wrote {args.n} pairs ({args.size} px) to {out} in {seconds:.1f} s")
    return 0
