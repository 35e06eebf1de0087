import os
import sys
from pathlib import Path

import pytest

# Nothing may download during tests (see shared/OFFLINE.md: offline hub calls can hang for minutes).
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
