"""The metric-audit table: rank correlations equal scipy's, oriented by each key's direction;
blindness and bracketing as defined."""

import math
from types import SimpleNamespace

import pytest
from scipy.stats import spearmanr

from ix2x.reports.metric_audit import audit, markdown, oriented_spearman


def _editor(name, config, values):
    return SimpleNamespace(name=name, config=config,
                           summary={k: {"value": v, "higher_is_better": hib} for k, (v, hib) in values.items()})


def _run():
    # effect (higher better) grows with the true edit; mae (lower better) grows with blur; a blind key
    eds = [_editor("identity", {}, {("m", "effect"): (0.0, True), ("m", "mae"): (0.0, False), ("m", "flat"): (1.0, True)}),
           _editor("oracle", {}, {("m", "effect"): (1.0, True), ("m", "mae"): (0.0, False), ("m", "flat"): (1.0, True)})]
    for s, eff, mae in ((0.25, 0.3, 0.01), (0.5, 0.45, 0.03), (0.75, 0.7, 0.02), (1.0, 1.0, 0.05)):
        eds.append(_editor("perturbation", {"kind": "true_edit", "strength": s},
                           {("m", "effect"): (eff, True), ("m", "mae"): (0.0, False), ("m", "flat"): (1.0, True)}))
        eds.append(_editor("perturbation", {"kind": "blur", "strength": s},
                           {("m", "effect"): (0.0, True), ("m", "mae"): (mae, False), ("m", "flat"): (1.0, True)}))
    return eds


def test_oriented_spearman_equals_scipy_signed_by_direction():
    s, v = [0, 0.25, 0.5, 0.75, 1], [0.0, 0.01, 0.03, 0.02, 0.05]
    assert oriented_spearman(s, v, True) == pytest.approx(spearmanr(s, v).statistic)
    assert oriented_spearman(s, v, False) == pytest.approx(-spearmanr(s, v).statistic)
    assert oriented_spearman(s, [1.0] * 5, True) == "blind"
    assert math.isnan(oriented_spearman(s, [0, 1, math.nan, 2, 3], True))


def test_audit_rows():
    kinds, rows = audit(_run())
    assert kinds == ["blur", "true_edit"]
    by = {r["key"]: r for r in rows}
    assert by["effect"]["rho"]["true_edit"] == pytest.approx(1.0) and by["effect"]["rho"]["blur"] == "blind"
    assert by["mae"]["rho"]["blur"] == pytest.approx(-spearmanr([0, .25, .5, .75, 1], [0, .01, .03, .02, .05]).statistic)
    assert by["effect"]["brackets"] is True
    assert by["flat"]["rho"]["true_edit"] == "blind"
    text = markdown(kinds, rows)
    assert "| m.effect | ↑ | blind | +1.00 |" in text
