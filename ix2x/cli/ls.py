"""``ix2x ls``: list installed editors, metrics and built-in suites."""

from __future__ import annotations

import argparse
import sys

HELP = "list installed editors, metrics or built-in suites"
EXAMPLES = """examples:
  ix2x ls editors
  ix2x ls metrics --verbose      also each one's settings and defaults
  ix2x ls suites
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["editors", "metrics", "classifiers", "suites"])
    p.add_argument("--verbose", "-v", action="store_true", help="show providers and settings (imports each)")


def run(args: argparse.Namespace) -> int:
    if args.what == "suites":
        from benchmarks import suite_path, suite_names
        from ix2x.suite import load_suite

        for name in suite_names():
            print(f"{name:20s} {load_suite(suite_path(name)).description}")
        return 0
    from ix2x import registry
    from ix2x.configs import describe

    kind = args.what[:-1]
    for name, entry in registry.entries(kind).items():
        print(f"{name:24s} {entry.target:45s} [{entry.provider}]")
        if args.verbose:
            cls = registry.load(kind, name)
            doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
            if doc:
                print(f"    {doc[0]}")
            for field, tp, default in (describe(cls.Config) if hasattr(cls, "Config") else ()):
                print(f"    {field}: {tp} = {default!r}")
    return 0
