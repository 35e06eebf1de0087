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
