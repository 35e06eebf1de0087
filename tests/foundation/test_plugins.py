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

    def edit(self, requests):
        return [EditResult(image=(r.image + self.config.amount).clamp(0, 1)) for r in requests]
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    src = tmp_path_factory.mktemp("plugin_src")
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "throwaway_plugin.py").write_text(PLUGIN_MODULE)
    site = tmp_path_factory.mktemp("plugin_site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(src)], check=True)
    return site


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
        from benchmarks import runner
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

    eps = [EntryPoint("identity", "editors.identity:Identity", "ix2x.editors"),
           EntryPoint("identity", "other_pkg.editors:Identity", "ix2x.editors")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    with pytest.raises(registry.RegistryError,
                       match=r"registered twice: by .*editors.identity:Identity.* and by .*other_pkg"):
        registry.entries("editor")


def test_unknown_metric_lists_installed():
    with pytest.raises(registry.RegistryError, match="Did you mean 'out_of_mask_change'"):
        registry.load("metric", "out_of_mask_chnage")
