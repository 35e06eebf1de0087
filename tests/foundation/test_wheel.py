"""The wheel as a user installs it: one namespace, nothing test-like, and it runs a suite from a folder
that holds its own `metrics/` and `editors/` packages (as many research repositories do).

The editable install hides namespace mistakes (the repository root is importable beside it), so this
test builds the wheel, installs it non-editable into a throwaway venv and runs it from elsewhere. The
heavy dependencies come from the test venv's site-packages through a folder of links that leaves out
ix2x itself, so nothing is downloaded and the installed ix2x is the only one that venv can see.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP_COPY = {".venv", ".git", "results", "build", "dist", "__pycache__", ".pytest_cache", ".benchmarks", ".whl"}


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src") / "ix2x"
    shutil.copytree(REPO, src, ignore=lambda d, names: [n for n in names if n in SKIP_COPY
                                                          or n.endswith(".egg-info")])
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)])
    (whl,) = out.glob("ix2x-*.whl")
    return whl


def test_wheel_installs_one_namespace_and_nothing_test_like(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"ix2x"}, f"the wheel claims top-level names besides ix2x: {sorted(top)}"
    assert not [n for n in names if "/tests/" in n or n.rsplit("/", 1)[-1].startswith("test_")
                or "/perf/" in n or "/gpu/" in n], "test files, perf benchmarks or GPU scripts in the wheel"
    # What a run needs from package data: the suites, the shipped models and classifier weights.
    for needed in ("ix2x/benchmarks/suites/phantom_smoke.yaml", "ix2x/training/configs/tiny.yaml",
                   "ix2x/models/phantom_ix2x/unet/diffusion_pytorch_model.safetensors",
                   "ix2x/classifiers/weights/phantom.safetensors"):
        assert needed in names, f"{needed} missing from the wheel"
    entry_points = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "ix2x.metrics.lpips:Lpips" in entry_points and "= metrics." not in entry_points


def _venv_with_shared_deps(where: Path) -> Path:
    """A venv whose only ix2x is the one we install; every other package is the test venv's."""
    venv.EnvBuilder(with_pip=False).create(where)
    py = where / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    links = where / "shared-deps"
    links.mkdir()
    # Every folder of installed packages this interpreter sees (its site-packages, and any a .pth adds),
    # the first one to provide a name winning as on sys.path.
    sites = [Path(p) for p in sys.path if p and Path(p).is_dir() and any(Path(p).glob("*.dist-info"))]
    for site_dir in sites:
        for entry in site_dir.iterdir():
            if "ix2x" in entry.name or entry.name.startswith("__editable__") or entry.suffix == ".pth" \
                    or (links / entry.name).exists():
                continue
            (links / entry.name).symlink_to(entry)
    (site / "shared_deps.pth").write_text(f"{links}\n")
    return py


def test_wheel_runs_a_suite_beside_a_users_own_metrics_package(wheel, tmp_path):
    py = _venv_with_shared_deps(tmp_path / "venv")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    # A research repository with packages named like ours, first on sys.path when run from there.
    project = tmp_path / "their_project"
    for name in ("metrics", "editors", "reports"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(f"WHOSE = 'theirs: {name}'\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(project)}
    where = _run([str(py), "-c", "import ix2x, ix2x.metrics, metrics; print(ix2x.__file__); print(metrics.WHOSE)"],
                 cwd=project, env=env).stdout.split()
    assert str(tmp_path / "venv") in where[0] and where[-1] == "metrics", where
    ix2x = tmp_path / "venv" / "bin" / "ix2x"
    proc = _run([str(ix2x), "run", "--suite", "phantom_smoke", "--limit", "4", "--quiet", "--out", str(tmp_path / "out")],
                cwd=project, env=env)
    assert "summary:" in proc.stdout
    (summary,) = (tmp_path / "out").glob("phantom_smoke/*/summary.csv")
    text = summary.read_text()
    assert "classifier_shift" in text and "out_of_mask_change" in text
