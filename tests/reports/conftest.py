import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import report_fixtures  # noqa: E402


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """One run of five editors (floor, ceiling, two brighteners, one that fails on a third of the
    samples) and three metrics (one a plugin), shared by the report tests: they only read it."""
    with pytest.MonkeyPatch.context() as mp:
        report_fixtures.patch_registry(mp)
        return report_fixtures.make_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture
def plugins(monkeypatch):
    report_fixtures.patch_registry(monkeypatch)
