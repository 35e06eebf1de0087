"""Requests are read-only to editors: one that modifies its input in place changes only its copy,
so its edit is scored against the sample's real input."""

import numpy as np
import pytest

from ix2x import registry
from ix2x.benchmarks import runner
from ix2x.suite import suite_from_dict
from ix2x.types import Editor, EditResult

REAL_LOAD = registry.load


class HalvesInPlace(Editor):
    def edit(self, requests):
        for r in requests:
            r.image.mul_(0.5)  # the plugin mistake: writes into the request
        return [EditResult(image=r.image) for r in requests]


@pytest.mark.parametrize("isolation", ["process", "none"])
def test_an_editor_writing_into_its_request_is_scored_against_the_real_input(tmp_path, samples, monkeypatch,
                                                                             isolation):
    monkeypatch.setattr(registry, "load", lambda kind, name: HalvesInPlace if name == "halves_in_place"
                        else REAL_LOAD(kind, name))
    suite = suite_from_dict({"name": "ro", "editors": [{"name": "halves_in_place"}], "isolation": isolation,
                             "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}],
                             "batch_size": 2})
    before = [s.image.numpy().copy() for s in samples]
    out = runner.execute(runner.start_run(suite, tmp_path), samples, progress=False)
    from ix2x.records import RunDir

    recs = {r["sample_id"]: r for r in RunDir.open(out.run_dir).records()}
    for s, x in zip(samples, before):
        outside = s.region.numpy() == 0
        expected = np.abs(0.5 * x - x)[outside].mean()  # the edit against the untouched input
        assert recs[s.sample_id]["status"] == "ok"
        assert recs[s.sample_id]["metrics"]["out_of_mask_change"]["mae"] == pytest.approx(expected, abs=2e-5)
        np.testing.assert_array_equal(s.image.numpy(), x)  # the caller's samples are untouched too
