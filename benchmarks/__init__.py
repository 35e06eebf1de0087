"""Benchmark suites (``suites/*.yaml``), the suite runner and its Python API:

- :func:`run_suite` / :func:`resume_run` (``ix2x run``) return a :class:`RunOutcome`;
- :func:`load_run` reads a run directory's records and summary as pandas DataFrames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SUITES_DIR = Path(__file__).parent / "suites"
DEFAULT_SUITE = "phantom"
# The API, imported on first use: `import ix2x.benchmarks` (suite names for the CLI) loads no torch.
_API = {"run_suite": "api", "resume_run": "api", "build_suite": "api", "Interrupted": "api",
        "RunOutcome": "runner", "load_run": "tables", "LoadedRun": "tables"}
__all__ = ["SUITES_DIR", "DEFAULT_SUITE", "suite_names", "suite_path", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def suite_path(name_or_path: str) -> Path:
    """A built-in suite name (``phantom``) or a path to a YAML file."""
    from ix2x.errors import UserError

    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        import difflib

        names = suite_names()
        close = difflib.get_close_matches(name_or_path, names, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UserError(f"Unknown suite `{name_or_path}`.{hint} Built-in suites: {', '.join(names)}; "
                        "or pass a path to a .yaml suite file.")
    return path
