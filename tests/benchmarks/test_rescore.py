"""Rescoring from cached edits gives the values of scoring during the run."""

import math

from ix2x.benchmarks import runner, scoring
from ix2x import records
from ix2x.suite import ComponentSpec, suite_from_dict


def test_rescore_matches_in_run_scores(tmp_path, samples):
    """The oracle changes pixels outside a region narrowed to half the true change, so a new
    threshold changes `changed_fraction`: rescoring must write exactly what the metric computes on
    the cached edits with the new settings (identity and oracle alone left every value unchanged at
    any threshold, so an old version of this test passed whatever rescore wrote)."""
    import dataclasses

    from ix2x.metrics.out_of_mask_change import OutOfMaskChange

    narrowed = []
    for s in samples:
        region = s.region.clone()
        region[..., 5:] = 0  # the true change spans columns 2-7; half of it is now "outside"
        narrowed.append(dataclasses.replace(s, region=region))
    suite = suite_from_dict({"name": "r", "editors": [{"name": "identity"}, {"name": "oracle"}],
                             "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}]})
    run_dir = runner.start_run(suite, tmp_path)
    runner.execute(run_dir, narrowed, progress=False)
    before = records.RunDir.open(run_dir).records()
    new = {"change_threshold": 0.5, "lpips_net": None}  # above the oracle's 0.4 change
    outcome = runner.rescore(run_dir, [ComponentSpec("out_of_mask_change", args=new)], narrowed, progress=False)
    assert outcome.run_dir != run_dir and records.RunDir.open(run_dir).records() == before
    after = records.RunDir.open(outcome.run_dir).records()
    assert [(r["editor"], r["sample_id"]) for r in after] == [(r["editor"], r["sample_id"]) for r in before]
    by_id = {s.sample_id: s for s in narrowed}
    metric = OutOfMaskChange(OutOfMaskChange.Config(**new))
    for b, a in zip(before, after):
        sample, cached = by_id[a["sample_id"]], scoring.cached_result(outcome.run_dir, a)
        (expected,) = metric.compute([sample], [cached])
        assert records.dumps(a["metrics"]["out_of_mask_change"]) == records.dumps(expected)
        if a["editor"] == "oracle":
            assert b["metrics"]["out_of_mask_change"]["changed_fraction"] > 0
            assert a["metrics"]["out_of_mask_change"]["changed_fraction"] == 0
            assert math.isclose(a["metrics"]["out_of_mask_change"]["mae"],
                                b["metrics"]["out_of_mask_change"]["mae"], abs_tol=1e-4)  # 16-bit PNG
    meta = records.RunDir.open(outcome.run_dir).meta
    assert meta["metrics"]["out_of_mask_change"]["config"]["change_threshold"] == 0.5
    assert meta["parent"] == str(run_dir.resolve()) and meta["status"] == "complete"


def test_metrics_that_edit_again_cannot_be_rescored(tmp_path, samples):
    import pytest

    from ix2x.errors import UserError

    suite = suite_from_dict({"name": "r", "editors": [{"name": "identity"}],
                             "metrics": [{"name": "out_of_mask_change"}]})
    run_dir = runner.start_run(suite, tmp_path)
    runner.execute(run_dir, samples, progress=False)
    with pytest.raises(UserError, match="axiomatic edit again"):
        runner.rescore(run_dir, [ComponentSpec("axiomatic")], samples, progress=False)


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_rescore_leaves_the_run_byte_identical_and_names_it_as_parent(tmp_path, samples):
    """Rescoring used to rewrite samples.jsonl, summary.csv and run.json of RUN in place."""
    suite = suite_from_dict({"name": "r", "editors": [{"name": "identity"}, {"name": "oracle"}],
                             "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}]})
    run_dir = runner.start_run(suite, tmp_path / "out")
    runner.execute(run_dir, samples, progress=False)
    before = _tree_bytes(run_dir)
    outcome = runner.rescore(run_dir, [ComponentSpec("out_of_mask_change", args={"change_threshold": 0.5,
                                                                              "lpips_net": None})],
                             samples, progress=False)
    assert _tree_bytes(run_dir) == before
    assert outcome.run_dir.parent == run_dir.parent  # beside it, under the suite's folder
    new = records.RunDir.open(outcome.run_dir)
    assert new.meta["parent"] == str(run_dir.resolve())
    assert len(new.records()) == 2 * len(samples) and all((outcome.run_dir / r["image"]).is_file()
                                                          for r in new.records())


def _cli_run(tmp_path, samples):
    """`ix2x run` of identity over a dataset folder of ``samples``: (the folder, the run directory)."""
    import json

    from samples_for_tests import write_mimic_dir

    from ix2x.cli.main import main

    data = write_mimic_dir(tmp_path / "data", samples)
    suite = tmp_path / "s.yaml"
    suite.write_text(json.dumps({"name": "r", "editors": [{"name": "identity"}],
                                 "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}],
                                 "data": {"source": "dir", "path": str(data)}}))
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "out" / "r").iterdir()
    return data, run_dir


def test_rescore_cli_names_the_new_run(tmp_path, samples, capsys):
    from ix2x.cli.main import main

    data, run_dir = _cli_run(tmp_path, samples)
    before = _tree_bytes(run_dir)
    capsys.readouterr()
    assert main(["rescore", str(run_dir), "--metrics", "out_of_mask_change", "--metric-arg",
                 "out_of_mask_change.lpips_net=null", "--out", str(tmp_path / "new"), "--quiet"]) == 0
    assert "rescored from" in capsys.readouterr().out and _tree_bytes(run_dir) == before
    (new,) = (tmp_path / "new" / "r").iterdir()
    assert records.RunDir.open(new).meta["parent"] == str(run_dir.resolve())


def test_an_unfinished_run_is_not_rescored(tmp_path, samples):
    import pytest

    from ix2x.errors import UserError

    suite = suite_from_dict({"name": "r", "editors": [{"name": "identity"}],
                             "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}]})
    run_dir = runner.start_run(suite, tmp_path)
    with pytest.raises(UserError, match="not complete .*--resume"):
        runner.rescore(run_dir, [ComponentSpec("out_of_mask_change")], samples, progress=False)
    assert [p.name for p in tmp_path.rglob("*") if p.is_dir()] == ["r", run_dir.name]


def test_rescore_refuses_data_that_changed_since_the_run(tmp_path, samples, capsys):
    """Rescore scored the old edits against changed inputs and copied the parent's data fingerprint,
    so the new run claimed clean data (found in review)."""
    from PIL import Image

    from ix2x.cli.main import main

    data, run_dir = _cli_run(tmp_path, samples)
    past = sorted((data / "past").iterdir())[0]
    img = Image.open(past)
    Image.eval(img, lambda v: 255 - v).save(past)  # a different input under the same id
    capsys.readouterr()
    args = ["rescore", str(run_dir), "--metrics", "out_of_mask_change", "--metric-arg",
            "out_of_mask_change.lpips_net=null", "--out", str(tmp_path / "new"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "data changed" in err.lower() and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").rglob("run.json"))


def test_rescore_with_a_missing_backbone_stops_before_making_a_run(tmp_path, samples, capsys):
    """It made a new run directory whose every value was a MissingWeightsError and said nothing (review)."""
    from ix2x.cli.main import main

    _, run_dir = _cli_run(tmp_path, samples)
    capsys.readouterr()
    assert main(["rescore", str(run_dir), "--metrics", "lpips", "--out", str(tmp_path / "new"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "alexnet" in err.lower() and "Traceback" not in err
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").rglob("run.json"))
