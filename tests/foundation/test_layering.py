"""DESIGN.md's layering table, enforced by walking every import of every module."""

import ast
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
OURS = {"ix2x", "editors", "metrics", "benchmarks", "reports", "training"}
# Each folder but ix2x/ installs as a subpackage of ix2x (pyproject's package-dir): metrics/ is
# imported as ix2x.metrics, and so on.
SUBPACKAGES = OURS - {"ix2x"}
# Which of our packages each package may import.
ALLOWED = {
    "ix2x": {"ix2x"},
    "editors": {"ix2x", "editors"},
    "metrics": {"ix2x", "metrics"},
    # editors and metrics by registry name only; run_suite writes the run's report when it ends
    "benchmarks": {"ix2x", "benchmarks", "reports"},
    "reports": {"ix2x", "reports"},
    "training": {"ix2x", "training"},
}
# reports/ reads run records only: these ix2x modules import no torch.
# ix2x.errors: an unsupported report format is the CLI's one-line user error.
REPORTS_MAY_USE = {"ix2x.records", "ix2x.data.instructions", "ix2x.data.findings", "ix2x.stats", "ix2x.errors"}


def _imports(path: Path):
    """(module imported, is at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top_level
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, id(node) in top_level


def _modules():
    for package in OURS:
        for path in sorted((REPO / package).rglob("*.py")):
            yield package, path


def _package_of(module: str) -> str | None:
    """Which of our folders ``module`` lives in (``ix2x.metrics.lpips`` -> ``metrics``), None if not ours."""
    parts = module.split(".")
    if parts[0] != "ix2x":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else "ix2x"


def _violations(package: str, rel: Path, imports) -> list[str]:
    """What ``imports`` ((module, at module level) pairs) of file ``rel`` in ``package`` break."""
    out = []
    in_cli = rel.parts[:2] == ("ix2x", "cli")
    for module, at_top in imports:
        root = _package_of(module)
        if root is None or root in ALLOWED[package]:
            if package == "reports" and root == "ix2x" and module not in REPORTS_MAY_USE:
                out.append(f"{rel}: reports may read run records only, imports {module}")
            continue
        if in_cli and not at_top:
            continue  # the CLI imports other packages lazily, per subcommand
        where = "at module level " if in_cli else ""
        out.append(f"{rel}: {package} may not import {module} {where}")
    return out


def test_layering_table():
    violations = []
    for package, path in _modules():
        violations += _violations(package, path.relative_to(REPO), _imports(path))
    assert not violations, "\n".join(violations)


def test_reports_import_no_torch():
    mods = ["ix2x." + ".".join(p.relative_to(REPO).with_suffix("").parts) for p in (REPO / "reports").rglob("*.py")]
    code = "import sys\n" + "".join(f"import {m}\n" for m in mods) + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_the_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import ix2x.metrics.out_of_mask_change\ndef f():\n    from ix2x.benchmarks import runner\n")
    imports = list(_imports(bad))
    assert imports == [("ix2x.metrics.out_of_mask_change", True), ("ix2x.benchmarks", False)]
    # A metric importing the runner, even inside a function, is a violation; so is any import of
    # another package at the CLI's module level, but not a lazy one inside a subcommand.
    assert len(_violations("metrics", Path("metrics/bad.py"), imports)) == 1
    assert _violations("ix2x", Path("ix2x/cli/bad.py"), imports) == [
        "ix2x/cli/bad.py: ix2x may not import ix2x.metrics.out_of_mask_change at module level "]
    assert _violations("reports", Path("reports/bad.py"), [("ix2x.diffusion.loop", True)]) == [
        "reports/bad.py: reports may read run records only, imports ix2x.diffusion.loop"]
    assert _violations("benchmarks", Path("benchmarks/ok.py"), [("ix2x.records", True), ("torch", True)]) == []
