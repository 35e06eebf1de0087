"""Benchmark suites (``suites/*.yaml``), the suite runner and ``perf/`` pytest-benchmark files."""

from __future__ import annotations

from pathlib import Path

SUITES_DIR = Path(__file__).parent / "suites"
DEFAULT_SUITE = "phantom"


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
