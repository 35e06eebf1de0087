"""``ix2x review``: blinded reader studies. ``export`` writes a packet readers open in a browser;
``import`` reads their ratings back into a run directory with agreement and metric correlations."""

from __future__ import annotations

import argparse

HELP = "reader studies: export a blinded rating packet, import the readers' ratings"
DESCRIPTION = """Expert readers are the final word on counterfactual radiographs. `export` draws cases from
run directories (stratified by editor, operation and finding) into PACKET/: one static HTML page and
its images, opened from disk by double-click (no server, no network), with a different case order
for each reader. Editor names and run ids appear nowhere in the packet; the key that unblinds it is
written beside it as PACKET.key.json: keep it from the readers. Each reader saves one JSON file.
`import` checks those files against the packet and writes a new run directory (naming the rated
runs as parents) whose records carry the ratings, and a reader-study report: human scores per
editor, real-or-edited accuracy, inter-rater agreement and each automatic metric's rank correlation
with the readers, all with 95 % intervals. See docs/reader_study.md."""
EXAMPLES = """examples:
  ix2x review export results/phantom/RUN --out study --n 60 --raters 3 --seed 0
  ix2x review export results/phantom/RUN --out turing --mode real-or-edited --n 80
  ix2x review import study ratings-AB.json ratings-CD.json ratings-EF.json --out results/reader_study/AB-CD-EF
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    ex = sub.add_parser("export", help="write a blinded packet of cases for readers",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    ex.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    ex.add_argument("--out", required=True, metavar="PACKET", help="new folder for the packet (its key goes "
                    "beside it as PACKET.key.json)")
    ex.add_argument("--n", type=int, default=60, help="number of cases (default 60)")
    ex.add_argument("--raters", type=int, default=3, help="number of readers, each gets their own order (default 3)")
    ex.add_argument("--seed", type=int, default=0, help="which cases and orders (same seed, same packet bytes)")
    ex.add_argument("--mode", choices=["rate", "real-or-edited"], default="rate",
                    help="rate: input and edit side by side, realism / instruction followed / unintended change; "
                         "real-or-edited: one image, real or edited? (default rate)")
    ex.add_argument("--editors", default=None, metavar="E1,E2",
                    help="only these editors of the runs (default: every editor)")
    ex.add_argument("--allow-patient-images", action="append", default=[], metavar="RUN_ID",
                    help="copy images of this run even though it holds real patient data (report_images: false); "
                         "name each such run")
    ex.add_argument("--quiet", action="store_true")
    im = sub.add_parser("import", help="read readers' ratings into a new run directory and report",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    im.add_argument("packet", metavar="PACKET", help="the packet folder (its key PACKET.key.json beside it)")
    im.add_argument("ratings", nargs="+", metavar="RATINGS.json")
    im.add_argument("--out", required=True, metavar="RUN_DIR", help="the new run directory to write")
    im.add_argument("--key", default=None, help="the packet's key (default: PACKET.key.json beside PACKET)")
    im.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ix2x.cli.common import require_run_dir

    if args.review_command == "export":
        for run_dir in args.run_dirs:
            require_run_dir(run_dir, "RUN_DIR")
        from ix2x.benchmarks.review_packet import export_packet, key_path

        key = export_packet(args.run_dirs, args.out, n=args.n, raters=args.raters, seed=args.seed, mode=args.mode,
                            editors=[e.strip() for e in args.editors.split(",") if e.strip()] if args.editors else None,
                            allow_patient_images=args.allow_patient_images, progress=not args.quiet)
        short = len(key["cases"]) < args.n
        print(f"packet: {Path(args.out) / 'index.html'} ({len(key['cases'])} cases"
              + (f", fewer than --n {args.n}: the runs hold no more" if short else "") + f", {args.raters} readers)")
        print(f"key (keep from the readers): {key_path(Path(args.out))}")
        return 0
    from ix2x.benchmarks.review_ratings import import_ratings

    outcome = import_ratings(Path(args.packet), [Path(p) for p in args.ratings], Path(args.out),
                             key=Path(args.key) if args.key else None, seed=args.seed)
    print(outcome.markdown)
    print(f"run directory: {outcome.run_dir}")
    return 0
