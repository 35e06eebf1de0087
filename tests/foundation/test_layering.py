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


# --------------------------------------------------------------------------------------- cycles
# Python runs a cycle of imports only when some import of it is deferred into a function, which
# hides that two files (or two parts of ix2x) each need the other: the concept they share belongs
# in one of them, or in a third. So the graph counts function-level imports too.

def _module_name(root: Path, path: Path) -> str:
    """``metrics/lpips.py`` -> ``ix2x.metrics.lpips`` (installed name), ``ix2x/data/__init__.py`` -> ``ix2x.data``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts if parts[0] == "ix2x" else ["ix2x", *parts])


def _imported_names(path: Path):
    """Every name an import statement of ``path`` may load, at any depth: ``from a import b`` yields
    ``a.b`` (a submodule, or an attribute of ``a``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``files`` it imports (the longest prefix of each name that is one)."""
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for name in _imported_names(path):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                graph[module].add(name)
    return graph


def part_of(module: str) -> str:
    """The part of ix2x a module belongs to: ``ix2x.data.mimic`` -> ``ix2x.data``,
    ``ix2x.images`` -> ``ix2x.images``, ``ix2x.metrics.lpips`` -> ``ix2x.metrics``."""
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def parts_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` between the parts of ix2x (a module, or a subpackage taken whole)."""
    out: dict[str, set[str]] = {part_of(a): set() for a in graph}
    for a, bs in graph.items():
        out[part_of(a)].update(part_of(b) for b in bs if part_of(b) != part_of(a))
    return out


def cycle_report(graph: dict[str, set[str]]) -> list[str]:
    """One line per cycle of ``graph``, naming the imports that close it."""
    return ["cycle " + ", ".join(c) + " (" + "; ".join(f"{a} imports {b}" for a in c for b in sorted(graph[a])
                                                      if b in c) + ")" for c in cycles(graph)]


def _our_files() -> dict[str, Path]:
    return {_module_name(REPO, path): path for _, path in _modules()}


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
    in_perf = rel.parts[:2] == ("benchmarks", "perf")
    for module, at_top in imports:
        root = _package_of(module)
        if root is None or root in ALLOWED[package]:
            if package == "reports" and root == "ix2x" and module not in REPORTS_MAY_USE:
                out.append(f"{rel}: reports may read run records only, imports {module}")
            continue
        if in_cli and not at_top:
            continue  # the CLI imports other packages lazily, per subcommand
        if in_perf and module.startswith("ix2x.metrics.functional"):
            continue  # pytest-benchmark files (not in the wheel) time the metrics' math itself
        where = "at module level " if in_cli else ""
        out.append(f"{rel}: {package} may not import {module} {where}")
    return out


def test_layering_table():
    violations = []
    for package, path in _modules():
        violations += _violations(package, path.relative_to(REPO), _imports(path))
    assert not violations, "\n".join(violations)


# metrics/functional/ holds the metrics' math (as torchmetrics' functional/): pure functions of
# tensors and of the models passed in. The metric classes build on it, never the other way round,
# and it knows no Metric contract or run state; the models it is given (LPIPS's network, the
# run's feature cache) are built in ix2x, which may not import metrics/.
FUNCTIONAL_MAY_NOT_USE = ("ix2x.types", "ix2x.classifiers.scoring", "ix2x.metrics")


def _functional_violations(rel: Path, imports) -> list[str]:
    out = []
    for module, _ in imports:
        if module.startswith("ix2x.metrics.functional"):
            continue
        if any(module == m or module.startswith(m + ".") for m in FUNCTIONAL_MAY_NOT_USE):
            out.append(f"{rel}: the metrics' math may not import {module}")
    return out


def test_metrics_math_is_a_functional_core():
    violations = []
    for path in sorted((REPO / "metrics" / "functional").rglob("*.py")):
        violations += _functional_violations(path.relative_to(REPO), _imports(path))
    assert not violations, "\n".join(violations)
    # and the checker sees a planted one
    assert _functional_violations(Path("metrics/functional/x.py"), [("ix2x.metrics._shared", False)]) == [
        "metrics/functional/x.py: the metrics' math may not import ix2x.metrics._shared"]
    assert _functional_violations(Path("metrics/functional/x.py"), [("ix2x.metrics.functional.ssim", True)]) == []


def test_reports_use_no_private_name_of_ix2x():
    """Reports compute with ix2x's public functions (one bootstrap: ix2x.stats), never with a
    private constant or helper, which may change under them (a copy of the bootstrap did)."""
    private = []
    for path in sorted((REPO / "reports").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ix2x"):
                private += [f"{path.relative_to(REPO)}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_")]
    assert not private, "\n".join(private)


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
    ssim = [("ix2x.metrics.functional.ssim", False)]
    assert _violations("benchmarks", Path("benchmarks/perf/test_x.py"), ssim) == []
    assert len(_violations("benchmarks", Path("benchmarks/runner.py"), ssim)) == 1


def test_no_import_cycle_between_files():
    report = cycle_report(import_graph(_our_files()))
    assert not report, "\n".join(report)


def test_no_import_cycle_between_parts_of_ix2x():
    """Subpackages taken whole: ``ix2x.images`` importing ``ix2x.data.dicom`` while ``ix2x.data.mimic``
    imports ``ix2x.images`` is a cycle too (it was one), though no two files close it."""
    report = cycle_report(parts_graph(import_graph(_our_files())))
    assert not report, "\n".join(report)


def test_the_checkers_catch_a_planted_function_level_import(tmp_path):
    """A copy of a real module with one import added inside a function: the cycle checker and the
    layering table both see it."""
    files = _our_files()
    planted = tmp_path / "errors.py"  # ix2x.suite imports ix2x.errors: importing it back closes a cycle
    planted.write_text((REPO / "ix2x" / "errors.py").read_text()
                       + "\n\ndef _late():\n    from ix2x.suite import Suite\n    return Suite\n")
    report = cycle_report(import_graph({**files, "ix2x.errors": planted}))
    assert len(report) == 1 and "ix2x.errors imports ix2x.suite" in report[0], report

    metric = tmp_path / "lpips.py"  # a metric reaching into the runner, lazily
    metric.write_text((REPO / "metrics" / "lpips.py").read_text()
                      + "\n\ndef _late():\n    from ix2x.benchmarks import runner\n    return runner\n")
    assert _violations("metrics", Path("metrics/lpips.py"), _imports(metric)) == [
        "metrics/lpips.py: metrics may not import ix2x.benchmarks "]


def test_the_cycle_checker_on_a_known_graph():
    graph = import_graph({})  # no files, no edges
    assert graph == {} and cycles(graph) == []
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycle_report({"a": {"b"}, "b": {"a"}}) == ["cycle a, b (a imports b; b imports a)"]
    assert parts_graph({"ix2x.data.mimic": {"ix2x.images"}, "ix2x.images": {"ix2x.data.dicom"},
                        "ix2x.data.dicom": set()}) == {"ix2x.data": {"ix2x.images"}, "ix2x.images": {"ix2x.data"}}
