import os
import sys
from pathlib import Path

import pytest

# Nothing may download during tests (offline, some hub calls retry for minutes before failing).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def samples():
    from samples_for_tests import tiny_samples

    return tiny_samples()


@pytest.fixture
def repo_root() -> Path:
    return REPO


def _find_shared() -> Path | None:
    """The shared test-data folder (real radiographs, the original release's masks): beside the
    repository (`../shared`) in a normal checkout, `/work/shared` from a worktree elsewhere, or
    `$IX2X_SHARED`. Nothing from it is committed; tests that need it skip when it is absent."""
    for candidate in (os.environ.get("IX2X_SHARED"), REPO.parent / "shared", "/work/shared"):
        if candidate and Path(candidate, "data").is_dir():
            return Path(candidate)
    return None


SHARED = _find_shared()


@pytest.fixture
def real_cxr_dir() -> Path:
    """`shared/data/real_cxr/`: real public radiographs (see its README)."""
    folder = SHARED / "data" / "real_cxr" if SHARED else None
    if folder is None or not folder.is_dir():
        pytest.skip("real radiographs not found: expected ../shared/data/real_cxr beside the repository "
                    "(or set IX2X_SHARED)")
    return folder


@pytest.fixture
def original_masks_dir() -> Path:
    """`shared/seed/masks/`: the original InstructX2X release's eight pseudo-masks."""
    folder = SHARED / "seed" / "masks" if SHARED else None
    if folder is None or not folder.is_dir():
        pytest.skip("original pseudo-masks not found: expected ../shared/seed/masks beside the repository "
                    "(or set IX2X_SHARED)")
    return folder


# Headless Chromium from Debian's package, without the background services that reach for the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """A Playwright Chromium browser for the HTML tests (report, reader-study packet); skipped with the
    reason when Playwright or Chromium is missing."""
    import shutil

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]'); the browser checks are skipped")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no Chromium found (Debian: apt-get install -y chromium; `make test` tries); "
                    "the browser checks are skipped")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()
