"""``ix2x dataset``: build MIMIC-EDIT-INSTRUCTION from MIMIC-Diff-VQA."""

from __future__ import annotations

import argparse

HELP = "build a MIMIC-EDIT-INSTRUCTION folder from MIMIC-Diff-VQA and MIMIC-CXR-JPG"
DESCRIPTION = """Convert MIMIC-Diff-VQA (Medical-Diff-VQA) difference questions into editing
instructions with the InstructX2X rules ("the main image has an additional finding of X ..." ->
"Add the finding of X.", ...), pair the reference study (input) with the main study (target), and
write instructions.csv, past/ and current/ (images symlinked or copied from MIMIC-CXR-JPG). Prints
how often each rule fired, every answer sentence no rule matched and every dropped row."""
EXAMPLES = """examples:
  ix2x dataset build --diff-vqa /data/medical-diff-vqa --mimic-cxr /data/mimic-cxr-jpg/2.0.0 \\
      --out /data/mimic-edit-instruction
  ix2x dataset build --diff-vqa DVQA --mimic-cxr CXR --out OUT --patient-split --seed 1 --copy
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="dataset_action", metavar="ACTION")
    b = sub.add_parser("build", help="build from MIMIC-Diff-VQA", description=DESCRIPTION,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--diff-vqa", required=True, metavar="DIR",
                   help="folder with mimic_pair_questions.csv (and mimic_all.csv)")
    b.add_argument("--mimic-cxr", required=True, metavar="DIR",
                   help="MIMIC-CXR-JPG root (files/pXX/pSUBJECT/sSTUDY/DICOM.jpg)")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder")
    b.add_argument("--patient-split", action="store_true",
                   help="replace the release split by a patient-level one (no patient in two splits)")
    b.add_argument("--seed", type=int, default=0, help="seed of the patient-level split (default: 0)")
    b.add_argument("--copy", action="store_true", help="copy images instead of symlinking them")
    p.set_defaults(_print_help=p.print_help)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "dataset_action", None) != "build":
        args._print_help()
        return 2
    from ix2x.data.diff_vqa import build_dataset

    report = build_dataset(args.diff_vqa, args.mimic_cxr, args.out, patient_split=args.patient_split,
                           seed=args.seed, link="copy" if args.copy else "symlink")
    print(report.format())
    print(f"dataset in {args.out}; check it with `{validate_command(args)}`")
    return 0 if report.n_written else 1


def validate_command(args: argparse.Namespace) -> str:
    """The validate command for what was built: symlinked images point into the MIMIC-CXR folder,
    which validate (and run) accept only as a named link root; copies need none."""
    import shlex
    from pathlib import Path

    command = f"ix2x validate --data {shlex.quote(str(args.out))}"
    if not args.copy:
        command += f" --link-root {shlex.quote(str(Path(args.mimic_cxr).expanduser().resolve()))}"
    return command
