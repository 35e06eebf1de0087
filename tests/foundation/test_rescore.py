"""Rescoring from cached edits gives the values of scoring during the run."""

import math

from benchmarks import runner
from ix2x import records
from ix2x.suite import ComponentSpec, suite_from_dict


def test_rescore_matches_in_run_scores(tmp_path, samples):
    suite = suite_from_dict({"name": "r", "editors": [{"name": "identity"}, {"name": "oracle"}],
                             "metrics": [{"name": "out_of_mask_change"}]})
    run_dir = runner.start_run(suite, tmp_path)
    runner.execute(run_dir, samples, progress=False)
    before = records.RunDir.open(run_dir).records()
    # Rescore with a different threshold: a change of 0.4 everywhere inside the region is counted
    # either way, and the outside stays exactly unchanged.
    runner.rescore(run_dir, [ComponentSpec("out_of_mask_change", args={"change_threshold": 0.3})],
                   samples, progress=False)
    after = records.RunDir.open(run_dir).records()
    assert len(after) == len(before)
    for b, a in zip(before, after):
        mb, ma = b["metrics"]["out_of_mask_change"], a["metrics"]["out_of_mask_change"]
        assert ma["mae"] == mb["mae"] == 0.0
        if mb["locality"] is not None:
            # Read back from 16-bit PNGs: equal to within the quantisation step.
            assert math.isclose(ma["locality"], mb["locality"], abs_tol=1e-4)
    meta = records.RunDir.open(run_dir).meta
    assert meta["metrics"]["out_of_mask_change"]["config"]["change_threshold"] == 0.3


def test_metrics_that_edit_again_cannot_be_rescored(tmp_path, samples):
    import pytest

    from ix2x.errors import UserError

    suite = suite_from_dict({"name": "r", "editors": [{"name": "identity"}],
                             "metrics": [{"name": "out_of_mask_change"}]})
    run_dir = runner.start_run(suite, tmp_path)
    runner.execute(run_dir, samples, progress=False)
    with pytest.raises(UserError, match="axiomatic edit again"):
        runner.rescore(run_dir, [ComponentSpec("axiomatic")], samples, progress=False)
