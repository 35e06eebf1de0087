import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Two editors on 6 phantom test pairs (64 px): the floor returns the input, the ceiling the true
# target, so readers' scores and the automatic metrics both separate them.
SUITE = {"name": "review_t", "seed": 0,
         "data": {"source": "phantom", "split": "test", "limit": 16, "phantom": {"n": 60, "seed": 0, "size": 64}},
         "editors": [{"name": "identity"}, {"name": "oracle"}],
         "metrics": [{"name": "out_of_mask_change"}, {"name": "gt_fidelity"}],
         "batch_size": 8, "device": "cpu", "report_samples": 2}
EDITORS = ("identity", "oracle")


@pytest.fixture(scope="session")
def phantom_run(tmp_path_factory) -> Path:
    from ix2x.benchmarks import runner
    from ix2x.suite import suite_from_dict

    d = runner.start_run(suite_from_dict(SUITE), tmp_path_factory.mktemp("runs"))
    runner.execute(d, progress=False)
    return d


@pytest.fixture(scope="session")
def packet(phantom_run, tmp_path_factory) -> Path:
    """A rate-mode packet of every edit of the run (12), for three readers (tests only read it)."""
    from ix2x.benchmarks.review_packet import export_packet

    from ix2x.records import RunDir

    out = tmp_path_factory.mktemp("packets") / "study"
    export_packet([phantom_run], out, n=len(RunDir.open(phantom_run).sample_records()), raters=3, seed=7,
                  progress=False)
    return out
