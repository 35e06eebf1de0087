"""Dose-response of sweeps: per-sample Spearman equals scipy's, reversals and 90th percentiles are
counted as defined, and a sweep run's reports carry the table and the Pareto plot."""

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from ix2x.reports.dose_response import dose_response, pareto_front, sweeps


def test_per_sample_spearman_equals_scipy_and_doses_may_come_unsorted():
    rng = np.random.default_rng(0)
    doses = [0.5, 0.1, 0.3, 0.2, 0.0]  # the editors' order in a suite need not be the dose order
    effect = rng.normal(size=(20, 5))
    effect[:, 1] += 2  # dose 0.1 larger, so the set's trend is still decided by the data
    effect[3, 2] = np.nan  # a failed edit
    r = dose_response(doses, effect)
    d = np.asarray(doses)
    order = np.argsort(d)
    mean_trend = spearmanr(d[order], np.nanmean(effect[:, order], axis=0)).statistic
    direction = -1 if mean_trend < 0 else 1
    assert r.direction == direction and r.doses == sorted(doses)
    for i in range(20):
        keep = np.isfinite(effect[i])
        expected = direction * spearmanr(d[keep], effect[i, keep]).statistic
        assert r.spearman[i] == pytest.approx(expected, abs=1e-12)


def test_reversals_and_percentiles_on_a_worked_example():
    doses = [1, 2, 3, 4]
    effect = np.array([[0.0, 0.1, 0.2, 0.3],    # monotone: 0 reversals of 3 steps
                       [0.0, 0.2, 0.1, 0.3],    # one reversal
                       [0.0, 0.1, 0.1, 0.05],   # a tie (not a reversal) and a reversal
                       [0.0, np.nan, 0.2, 0.4]])  # steps touching NaN are not counted: 1 step
    drift = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1]])
    r = dose_response(doses, effect, {"collateral": drift})
    assert r.direction == 1
    assert r.n_steps == 10 and r.reversal_share == pytest.approx(2 / 10)
    assert r.drift_p90["collateral"] == pytest.approx([np.percentile(c, 90) for c in drift.T])
    assert r.max_drift_p90["collateral"] == pytest.approx(np.percentile([0.4, 1.0, 0.5, 0.1], 90))
    assert r.spearman[0] == pytest.approx(1.0)
    assert math.isnan(dose_response(doses, np.array([[0.2, 0.2, 0.2, 0.2]] * 2)).spearman[0])  # constant


def test_bad_doses_are_refused():
    with pytest.raises(ValueError, match="at least 3 distinct"):
        dose_response([0.1, 0.1, 0.2], np.zeros((2, 3)))


def test_pareto_front():
    # (change, effect): lower change and higher effect are better
    pts = [(0.1, 0.2), (0.2, 0.5), (0.3, 0.4), (0.05, 0.1), (0.2, 0.5)]
    assert pareto_front(pts) == [True, True, False, True, True]


SWEEP = {
    "name": "sweeptest",
    "editors": [{"name": "brighten_t", "label": f"a{a}", "args": {"amount": a}} for a in (0.3, 0.02, 0.1, 0.05)],
    "metrics": [{"name": "classifier_shift"}, {"name": "out_of_mask_change", "args": {"lpips_net": None}}],
    "batch_size": 4,
}


def test_a_sweep_run_reports_its_dose_response(tmp_path, plugins):
    import report_fixtures

    from ix2x.reports import write_report
    from ix2x.reports.data import load

    run = report_fixtures.make_run(tmp_path / "runs", SWEEP, report_fixtures.samples(6, hostile=None))
    _, editors = load([run])
    (sw,) = sweeps(editors)
    assert sw.editor == "brighten_t" and sw.setting == "amount" and sw.labels == ["a0.02", "a0.05", "a0.1", "a0.3"]
    by_label = {e.label: e for e in editors}
    for j, label in enumerate(sw.labels):
        effects = list(by_label[label].per_sample("classifier_shift", "effect").values())
        assert sw.result.mean_effect[j] == pytest.approx(np.mean(effects))
    text = write_report([run], tmp_path / "report.md").read_text()
    assert "## Dose-response: brighten\\_t over amount" in text and "median per-sample Spearman" in text
    write_report([run], tmp_path / "report.html")
    assert list((tmp_path / "report_files").glob("pareto-0.png"))


def test_strength_sweep_suite_holds_three_sweeps():
    """The built-in strength_sweep suite: InstructX2X and InstructPix2Pix (the same phantom model,
    no RSE) over text guidance, RoentGen-style SDEdit over its strength; the report finds each."""
    from types import SimpleNamespace

    from ix2x.benchmarks import suite_path
    from ix2x.suite import load_suite

    suite = load_suite(suite_path("strength_sweep"))
    rng = np.random.default_rng(0)
    views = [SimpleNamespace(name=e.name, label=e.key, config=dict(e.args),
                             per_sample=lambda m, k, r=rng.random(4): ({f"s{i}": float(v) for i, v in enumerate(r)}
                                                                       if (m, k) == ("classifier_shift", "effect") else {}))
             for e in suite.editors]
    found = {(sw.editor, sw.setting): len(sw.labels) for sw in sweeps(views)}
    assert found == {("instructx2x", "text_scale"): 5, ("instructpix2pix", "text_scale"): 5, ("roentgen", "strength"): 5}
