"""``ix2x ls``: list installed editors, metrics and built-in suites."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "list installed editors, metrics, classifiers, built-in suites or a dataset's sample ids"
EXAMPLES = """examples:
  ix2x ls editors
  ix2x ls metrics --verbose      also each one's settings and defaults
  ix2x ls suites
  ix2x ls samples --data /data/mimic-edit-instruction    the ids `ix2x score` names edit files by
  ix2x ls samples --suite phantom_smoke --verbose        also each id's file name and instruction
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["editors", "metrics", "classifiers", "suites", "samples"])
    p.add_argument("--verbose", "-v", action="store_true", help="show providers and settings (imports each)")
    p.add_argument("--json", action="store_true", help="a JSON list on stdout instead of text")
    p.add_argument("--suite", default=None, help="samples: the suite whose data to list (default: phantom)")
    p.add_argument("--data", default=None, metavar="DIR", help="samples: a MIMIC-EDIT-INSTRUCTION directory")
    p.add_argument("--split", default=None, help="samples: the split (default: the suite's)")
    p.add_argument("--limit", type=int, default=None, help="samples: the first N only")


def run(args: argparse.Namespace) -> int:
    if args.what == "samples":
        return _samples(args)
    rows = _suites() if args.what == "suites" else _components(args.what[:-1], args.verbose)
    if args.json:
        print(json.dumps(rows, indent=2, default=repr))
        return 0
    for row in rows:
        if args.what == "suites":
            print(f"{row['name']:20s} {row['description']}")
            continue
        print(f"{row['name']:24s} {row['target']:45s} [{row['provider']}]")
        if "error" in row:
            print(f"    BROKEN: {row['error']}")
        if row.get("doc"):
            print(f"    {row['doc']}")
        for field in row.get("settings", []):
            print(f"    {field['name']}: {field['type']} = {field['default']!r}")
    return 0


def _suites() -> list[dict]:
    from ix2x.benchmarks import suite_names, suite_path
    from ix2x.suite import load_suite

    return [{"name": n, "description": load_suite(suite_path(n)).description} for n in suite_names()]


def _components(kind: str, verbose: bool) -> list[dict]:
    """Every entry; with ``verbose`` each is imported, and one that fails is marked, not fatal."""
    from ix2x import registry
    from ix2x.configs import describe

    rows = []
    for name, entry in registry.entries(kind).items():
        row = {"name": name, "target": entry.target, "provider": entry.provider}
        if verbose:
            try:
                cls = registry.load(kind, name)
                settings = describe(cls.Config) if hasattr(cls, "Config") else []
            except Exception as e:  # a broken plugin breaks alone
                row["error"] = str(e)
            else:
                doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
                row["doc"] = doc[0] if doc else ""
                row["settings"] = [{"name": f, "type": t, "default": d} for f, t, d in settings]
        rows.append(row)
    return rows


def _samples(args: argparse.Namespace) -> int:
    """The sample ids of a suite's data, in its order; with ``--verbose`` the file name ``ix2x
    score`` also accepts for an edit (the id escaped) and the instruction."""
    from ix2x.cli.common import suite_from_args
    from ix2x.data.sources import open_dataset
    from ix2x.editors.outputs import file_stem

    suite = suite_from_args(args)
    dataset = open_dataset(suite.data, progress=not args.json)
    ids = getattr(dataset, "sample_ids", None) or [s.sample_id for s in dataset]
    if not args.verbose:
        print(json.dumps(list(ids), indent=2) if args.json else "\n".join(ids))
        return 0
    rows = [{"sample_id": sid, "file_name": file_stem(sid), "instruction": dataset[i].instruction}
            for i, sid in enumerate(ids)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['sample_id']}\t{r['file_name']}\t{r['instruction']}")
    return 0
