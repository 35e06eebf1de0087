"""A third-party editor installed in its own package is found through its entry point."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ix2x import registry

PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "ix2x-throwaway-plugin"
version = "0.0.1"
[project.entry-points."ix2x.editors"]
brighten = "throwaway_plugin:Brighten"
needs_file = "throwaway_plugin:NeedsFile"
[tool.setuptools]
py-modules = ["throwaway_plugin"]
"""

PLUGIN_MODULE = '''
"""A throwaway third-party editor: brightens the whole image."""
from dataclasses import dataclass
from ix2x.types import Editor, EditResult

class Brighten(Editor):
    @dataclass(frozen=True)
    class Config:
        amount: float = 0.1

        def __post_init__(self):
            if not 0 <= self.amount <= 1:
                raise ValueError(f"`amount` must be in [0, 1], got {self.amount}")

    def edit(self, requests):
        return [EditResult(image=(r.image + self.config.amount).clamp(0, 1)) for r in requests]


class NeedsFile(Brighten):
    """Its weights file is missing."""

    def problems(self, device="cpu"):
        return ["weights file /nowhere/needs_file.safetensors is missing: fetch it with `get-needs-file`"]
'''

# A second distribution beside the good one: one module that fails on import, one entry point naming
# an attribute its (fine) module lacks, and a metric whose module fails.
BROKEN_PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "ix2x-broken-plugin"
version = "0.0.2"
[project.entry-points."ix2x.editors"]
broken_import = "broken_plugin:Anything"
missing_attr = "broken_ok:Missing"
[project.entry-points."ix2x.metrics"]
broken_metric = "broken_plugin:Metric"
[tool.setuptools]
py-modules = ["broken_plugin", "broken_ok"]
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    src = tmp_path_factory.mktemp("plugin_src")
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "throwaway_plugin.py").write_text(PLUGIN_MODULE)
    broken = tmp_path_factory.mktemp("broken_src")
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "broken_plugin.py").write_text("import no_such_module_xyz\n")
    (broken / "broken_ok.py").write_text("PRESENT = 1\n")
    site = tmp_path_factory.mktemp("plugin_site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(src), str(broken)], check=True)
    return site


@pytest.fixture
def with_plugins(plugin_site, monkeypatch):
    """Both plugin distributions importable in this process (entry points are read from sys.path)."""
    monkeypatch.syspath_prepend(str(plugin_site))
    yield plugin_site
    for name in ("throwaway_plugin", "broken_ok"):
        sys.modules.pop(name, None)


def _ix2x(args, site, cwd):
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "ix2x", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


def test_ls_shows_plugin(plugin_site, tmp_path):
    out = _ix2x(["ls", "editors"], plugin_site, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "brighten" in out.stdout and "ix2x-throwaway-plugin 0.0.1" in out.stdout
    assert "identity" in out.stdout


def test_run_uses_plugin(plugin_site, tmp_path):
    # Data: a tiny MIMIC-layout dataset is not needed; drive the runner in a subprocess with
    # in-memory samples, with the plugin reached only through its entry point.
    code = textwrap.dedent(f"""
        import sys, json
        sys.path.insert(0, {str(os.path.dirname(os.path.dirname(__file__)))!r})
        from pathlib import Path
        from ix2x.benchmarks import runner
        from ix2x.suite import suite_from_dict
        from samples_for_tests import tiny_samples
        suite = suite_from_dict({{"name": "p", "editors": [{{"name": "brighten", "args": {{"amount": 0.25}}}}],
                                  "metrics": [{{"name": "out_of_mask_change"}}]}})
        out = runner.execute(runner.start_run(suite, Path({str(tmp_path)!r})), tiny_samples(), progress=False)
        print(json.dumps(str(out.run_dir)))
    """)
    env = {**os.environ, "PYTHONPATH": str(plugin_site)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    from ix2x.records import RunDir

    recs = RunDir.open(json.loads(proc.stdout.strip().splitlines()[-1])).records()
    assert {r["editor"] for r in recs} == {"brighten"} and all(r["status"] == "ok" for r in recs)
    # Brightening everything by 0.25 (inputs are in [0, 0.5]) changes every outside pixel by 0.25.
    assert all(abs(r["metrics"]["out_of_mask_change"]["mae"] - 0.25) < 1e-6 for r in recs)


def test_duplicate_name_names_both_providers(monkeypatch):
    from importlib.metadata import EntryPoint

    eps = [EntryPoint("identity", "ix2x.editors.identity:Identity", "ix2x.editors"),
           EntryPoint("identity", "other_pkg.editors:Identity", "ix2x.editors")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    with pytest.raises(registry.RegistryError,
                       match=r"registered twice: by .*ix2x.editors.identity:Identity.* and by .*other_pkg"):
        registry.entries("editor")


def test_unknown_metric_lists_installed():
    with pytest.raises(registry.RegistryError, match="Did you mean 'out_of_mask_change'"):
        registry.load("metric", "out_of_mask_chnage")


def test_broken_plugins_break_alone_in_ls(with_plugins, capsys):
    from ix2x.cli.main import main

    assert main(["ls", "editors", "-v"]) == 0
    out = capsys.readouterr().out
    assert "brighten" in out and "identity" in out and "instructx2x" in out and "needs_file" in out
    blocks = {b.split()[0]: b for b in ("\n" + out).split("\n") if b and not b.startswith(" ")}
    assert set(blocks) >= {"broken_import", "missing_attr", "brighten", "oracle"}
    assert main(["ls", "editors", "-v", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert "error" not in rows["brighten"] and rows["brighten"]["settings"][0]["name"] == "amount"
    err = rows["broken_import"]["error"]
    assert "editor `broken_import` (broken_plugin:Anything, from ix2x-broken-plugin 0.0.2)" in err
    assert "ModuleNotFoundError: No module named 'no_such_module_xyz'" in err and "\n" not in err
    assert "AttributeError" in rows["missing_attr"]["error"] and "broken_ok:Missing" in rows["missing_attr"]["error"]
    assert main(["ls", "metrics", "-v"]) == 0
    out = capsys.readouterr().out
    assert "BROKEN: metric `broken_metric`" in out and "out_of_mask_change" in out and "lpips" in out


def test_broken_plugin_error_is_one_line_and_the_good_one_runs(with_plugins, tmp_path, capsys):
    from ix2x.cli.main import main
    from samples_for_tests import tiny_samples, write_mimic_dir

    data = write_mimic_dir(tmp_path / "d", tiny_samples(2))
    common = ["--data", str(data), "--device", "cpu", "--metrics", "out_of_mask_change", "--quiet",
              "--out", str(tmp_path / "results")]
    assert main(["run", "--suite", "mimic", "--editors", "broken_import", *common]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ix2x-broken-plugin 0.0.2" in err and "no_such_module_xyz" in err
    assert not (tmp_path / "results").exists()
    assert main(["run", "--suite", "mimic", "--editors", "brighten", *common]) == 0


def test_plugin_config_rejection_is_a_one_line_error(with_plugins, tmp_path, capsys):
    from ix2x.cli.main import main

    assert main(["run", "--suite", "phantom_smoke", "--editors", "brighten", "--editor-arg", "brighten.amount=5",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ix2x run: error: editor `brighten`: `amount` must be in [0, 1], got 5.0"


def test_plugin_problems_hook_is_reported(with_plugins, tmp_path, capsys):
    from ix2x.cli.main import main
    from samples_for_tests import tiny_samples, write_mimic_dir

    data = write_mimic_dir(tmp_path / "d", tiny_samples(2))
    assert main(["validate", "--data", str(data), "--editors", "needs_file", "--metrics", "out_of_mask_change",
                 "--device", "cpu"]) == 1
    assert ("PROBLEM: editor `needs_file`: weights file /nowhere/needs_file.safetensors is missing"
            in capsys.readouterr().out)
    # and run refuses to start on it, before its run directory exists
    assert main(["run", "--data", str(data), "--suite", "mimic", "--editors", "needs_file", "--device", "cpu",
                 "--out", str(tmp_path / "results")]) == 2
    assert "get-needs-file" in capsys.readouterr().err and not (tmp_path / "results").exists()
