"""``ix2x`` command line. One module per subcommand in this package.

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``,
and imports heavy libraries inside ``run`` only, so that ``ix2x --help`` and ``ix2x ls`` start fast.
Subcommand modules are discovered from this package, so adding one needs no edit here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

import ix2x.cli as cli_package

_NOT_SUBCOMMANDS = {"main", "common"}

EPILOG = """examples:
  ix2x run                              default suite (phantoms, CPU, about 5 minutes)
  ix2x run --suite phantom_smoke        the same in seconds
  ix2x ls editors                       what is installed, built-in and plugins
  ix2x <command> --help                 details and an example for each command
"""


def _subcommand_modules() -> dict[str, object]:
    found = {}
    for info in pkgutil.iter_modules(cli_package.__path__):
        if info.name.startswith("_") or info.name in _NOT_SUBCOMMANDS:
            continue
        module = importlib.import_module(f"ix2x.cli.{info.name}")
        found[getattr(module, "NAME", info.name.replace("_", "-"))] = module
    return dict(sorted(found.items()))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ix2x")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ix2x", description="Evaluate and benchmark counterfactual chest X-ray editors.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ix2x {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _subcommand_modules().items():
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           epilog=getattr(module, "EXAMPLES", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def offline_unless_allowed() -> None:
    """ix2x reads weights from local files only; a Hugging Face loader that is not told so reaches for
    the Hub and can hang for minutes without a network. So HF_HUB_OFFLINE=1 unless the user set it
    (to anything) or allows downloads with IX2X_ALLOW_DOWNLOADS=1. Before any Hub import: the
    libraries read it once, when imported."""
    import os

    if os.environ.get("IX2X_ALLOW_DOWNLOADS", "").lower() not in ("1", "true", "yes"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: Sequence[str] | None = None) -> int:
    offline_unless_allowed()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 2
    from ix2x.errors import USER_ERRORS

    try:
        return int(args._module.run(args) or 0)
    except USER_ERRORS as e:
        print(f"ix2x {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
