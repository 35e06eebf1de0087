"""`ix2x compare` reports paired differences and gates regressions."""

import pytest

from ix2x.benchmarks import runner
from ix2x.benchmarks.compare import Gate, compare_runs
from ix2x.cli.main import main
from ix2x.errors import UserError
from ix2x.suite import suite_from_dict


def _run(tmp_path, samples, editors):
    suite = suite_from_dict({"name": "c", "editors": editors, "metrics": [{"name": "out_of_mask_change"}]})
    return runner.execute(runner.start_run(suite, tmp_path), samples, progress=False).run_dir


@pytest.fixture
def two_runs(tmp_path, samples):
    a = _run(tmp_path / "a", samples, [{"name": "identity", "label": "ed"}])
    b = _run(tmp_path / "b", samples, [{"name": "identity", "label": "ed"}])
    return a, b


def test_identical_runs_pass_every_gate(two_runs, capsys):
    a, b = two_runs
    assert main(["compare", str(a), str(b), "--fail-if", "out_of_mask_change.mae:+5%"]) == 0


def test_gate_fails_on_a_regression(tmp_path, samples, capsys):
    import dataclasses

    a = _run(tmp_path / "a", samples, [{"name": "identity", "label": "ed"}])
    # B's "editor" is the oracle under the same label, scored against a region that excludes the
    # change: every changed pixel now counts as out-of-mask change.
    shifted = [dataclasses.replace(s, region=s.region * 0) for s in samples]
    b = _run(tmp_path / "b", shifted, [{"name": "oracle", "label": "ed"}])
    rows = {(r["metric"], r["key"]): r for r in compare_runs(str(a), str(b))}
    mae = rows[("out_of_mask_change", "mae")]
    assert mae["a"] == 0 and mae["b"] > 0 and mae["n_paired"] == 6 and mae["ci_low"] > 0
    assert main(["compare", str(a), str(b), "--fail-if", "out_of_mask_change.mae:+5%"]) == 1
    assert "GATE FAILED: ed out_of_mask_change.mae" in capsys.readouterr().out
    # The same move is not a failure for a gate on decreases.
    assert main(["compare", str(a), str(b), "--fail-if", "out_of_mask_change.mae:-5%"]) == 0


def test_gate_parsing():
    g = Gate.parse("out_of_mask_change.mae@instructx2x:+5%")
    assert (g.metric, g.key, g.editor, g.sign, g.amount, g.percent) == (
        "out_of_mask_change", "mae", "instructx2x", 1, 5.0, True)
    assert Gate.parse("lpips.x_vs_edit:-0.01").fails(0.5, 0.45) and not Gate.parse("lpips.x:-0.1").fails(0.5, 0.45)
    assert Gate.parse("m.k:+10%").fails(1.0, 1.2) and not Gate.parse("m.k:+10%").fails(1.0, 1.05)
    with pytest.raises(UserError, match="must look like"):
        Gate.parse("mae>5")


def test_a_run_compared_with_itself_has_no_differences(two_runs, capsys):
    """It printed NaN rows (metrics undefined for identity) as differences."""
    a, _ = two_runs
    assert main(["compare", str(a), str(a)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no differences") and "nan" not in out


def test_runs_of_different_suites_are_refused_in_one_line(tmp_path, samples, capsys):
    a = _run(tmp_path / "a", samples, [{"name": "identity", "label": "ed"}])
    suite = suite_from_dict({"name": "other", "editors": [{"name": "identity", "label": "ed"}],
                             "metrics": [{"name": "out_of_mask_change"}]})
    b = runner.execute(runner.start_run(suite, tmp_path / "b"), samples, progress=False).run_dir
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different suites ('c' and 'other')" in err
    assert main(["compare", str(a), str(b), "--allow-unpaired"]) == 0


def test_runs_with_no_common_samples_are_refused(tmp_path, samples, capsys):
    """They exited 0 with n = 0 everywhere and B - A from unpaired values."""
    import dataclasses

    a = _run(tmp_path / "a", samples, [{"name": "identity", "label": "ed"}])
    other = [dataclasses.replace(s, sample_id="x" + s.sample_id) for s in samples]
    b = _run(tmp_path / "b", other, [{"name": "identity", "label": "ed"}])
    assert main(["compare", str(a), str(b)]) == 2
    assert "share no sample" in capsys.readouterr().err
    with pytest.raises(UserError, match="--allow-unpaired"):
        compare_runs(str(a), str(b))
    rows = compare_runs(str(a), str(b), allow_unpaired=True)
    assert rows and all(r["n_paired"] == 0 for r in rows)


def test_runs_scored_at_different_evaluation_sizes_are_refused(tmp_path, samples, capsys):
    # A run from before eval_size (native size) against a new one (512) paired silently (review).
    import json

    a = _run(tmp_path / "a", samples, [{"name": "identity", "label": "ed"}])
    b = _run(tmp_path / "b", samples, [{"name": "identity", "label": "ed"}])
    meta = json.loads((b / "run.json").read_text())
    meta["suite"]["eval_size"] = None
    (b / "run.json").write_text(json.dumps(meta))
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different evaluation sizes" in err
    assert main(["compare", str(a), str(b), "--allow-unpaired"]) == 0


def test_compare_resamples_patients_where_they_repeat(tmp_path, samples):
    """Regression: compare resampled samples one by one although summaries cluster by patient, so
    on data where patients repeat (MIMIC) its paired intervals were too narrow. Each sample here is
    a patient seen four times (four studies with the same images)."""
    import dataclasses

    def dataset(repeated):
        out = []
        for s in samples:
            for j in range(4):
                out.append(dataclasses.replace(s, sample_id=f"{s.sample_id}_{j}",
                                               patient_id=s.sample_id if repeated else f"{s.sample_id}_{j}"))
        return out

    def interval(repeated):
        root = tmp_path / ("rep" if repeated else "uniq")
        data = dataset(repeated)
        a = _run(root / "a", data, [{"name": "identity", "label": "ed"}])
        shifted = [dataclasses.replace(s, region=s.region * 0) for s in data]
        b = _run(root / "b", shifted, [{"name": "oracle", "label": "ed"}])
        row = {(r["metric"], r["key"]): r for r in compare_runs(str(a), str(b))}[("out_of_mask_change", "mae")]
        assert row["ci_method"] == "percentile" and row["nan_reason"] == ""
        return row["ci_low"], row["ci_high"], row["diff"]

    lo_u, hi_u, diff_u = interval(False)
    lo_r, hi_r, diff_r = interval(True)
    assert diff_u == diff_r
    assert hi_r - lo_r > 1.5 * (hi_u - lo_u)
