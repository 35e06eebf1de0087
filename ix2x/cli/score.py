"""``ix2x score``: score edits made elsewhere (a folder or CSV per method) like a run."""

from __future__ import annotations

import argparse

HELP = "score edits made elsewhere: a folder of <sample_id>.png (or a CSV) per method, no editing"
DESCRIPTION = """Score folders of edited images made by your own pipeline with a suite's data and
metrics. Each --edits NAME=FOLDER takes the place of the suite's editors (the `outputs` editor);
the result is a normal run directory (results/<suite>/<run-id>/: run.json, samples.jsonl,
summary.csv, report.html) that report, compare, rescore and merge read as any other.

Layout: FOLDER/<sample_id>.<png|jpg|jpeg|tif|tiff|dcm>, with the ids `ix2x ls samples` prints
(same --suite/--data/--split/--limit), optionally FOLDER/<sample_id>.guidance.png (a guidance map in
[0, 1]) and FOLDER/<sample_id>.mask.png (the edit mask) for the metrics that use them; or a CSV
`sample_id,edit[,guidance_map][,edit_mask]` whose paths are relative to the CSV's folder.
`ix2x export RUN_DIR --out FOLDER` writes a run's edits in this layout.

A sample without an edit, or whose file is not an image, is a failed record naming it; files that
belong to no sample are counted and listed (run.json `outputs`). An edit of another size is resized
to the input's (recorded in the record's info). Latency is n/a: the edits were not made here. The
folders' fingerprints are recorded; a resume refuses a folder whose files changed."""
EXAMPLES = """examples:
  ix2x ls samples --suite phantom_smoke                  the ids to name files by
  ix2x score --suite phantom_smoke --edits mine=out/mine
  ix2x score --suite mimic --data /data/mimic-edit-instruction --edits a=out/a --edits b=out/b.csv
  ix2x score --suite phantom --edits mine=out/mine --shard 0/4     one job of four (then ix2x merge)
  ix2x score --resume results/phantom_smoke/20261125-120000-ab12cd
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default=None, help="suite whose data and metrics score the edits (default: phantom); "
                   "without --edits its editors must all be `outputs` editors")
    p.add_argument("--edits", action="append", default=[], metavar="NAME=FOLDER",
                   help="a folder (or CSV) of edits, scored under NAME (repeatable)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="MIMIC-EDIT-INSTRUCTION directory; switches the data source to it")
    p.add_argument("--split", default=None, help="dataset split (default: the suite's, usually test)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N samples")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (replaces the suite's)")
    p.add_argument("--bit-depth", default=None, choices=["auto", "8", "12", "16"],
                   help="how 16-bit edit files are scaled (default 16: the file's own depth; see ix2x.images)")
    p.add_argument("--seed", type=int, default=None, help="seed of the bootstrap intervals")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default=None, help="where the metrics' models run: cpu, cuda, cuda:1 ...")
    p.add_argument("--out", default="results", help="root of run directories (default: results)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue an interrupted score run; other options are ignored")
    from ix2x.cli.common import add_launch_arguments

    add_launch_arguments(p)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ix2x.cli.common import suite_from_args
    from ix2x.cli.common import launch

    if args.resume:
        return launch(args, None)
    from ix2x.benchmarks.outputs import outputs_suite, parse_edits

    edits = parse_edits(args.edits)  # a malformed --edits is refused before the suite loads
    suite = outputs_suite(suite_from_args(args), edits)
    if args.bit_depth is not None:
        depth = args.bit_depth if args.bit_depth == "auto" else int(args.bit_depth)
        suite = dataclasses.replace(suite, editors=tuple(
            dataclasses.replace(e, args={**e.args, "bit_depth": depth}) for e in suite.editors))
    return launch(args, suite)  # the library pins the folders' fingerprints and checks the suite
