"""The shipped phantom classifier: loads from safetensors, meets its held-out criterion, and makes
classifier_shift and demographic_preservation order identity and oracle correctly on new phantoms.
Also ``ix2x train-classifier`` end to end on a tiny dataset."""

import json
import math

import pytest
import torch
from metric_helpers import identity, oracle, phantom_samples

from ix2x.classifiers import clear_cache, get_classifier
from ix2x.classifiers.phantom import DEFAULT_WEIGHTS, PhantomClassifier

SHIPPED = DEFAULT_WEIGHTS.is_file()


@pytest.mark.skipif(not SHIPPED, reason="phantom classifier weights not shipped yet")
def test_shipped_weights_pass_their_held_out_criterion():
    cfg = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    held = cfg["scores"]["test_held_out"]
    assert held["passes"] and min(held["auroc"].values()) >= 0.95
    assert held["sex_accuracy"] >= 0.95 and held["habitus_accuracy"] >= 0.95 and held["age_pearson_r"] >= 0.95
    assert DEFAULT_WEIGHTS.stat().st_size < 5_000_000


@pytest.mark.skipif(not SHIPPED, reason="phantom classifier weights not shipped yet")
def test_phantom_classifier_orders_identity_and_oracle():
    from ix2x.metrics.classifier_shift import ClassifierShift
    from ix2x.metrics.demographic_preservation import DemographicPreservation

    clear_cache()
    samples = phantom_samples(n=12, size=128, seed=7)  # seed 7: not the training seed
    shift = ClassifierShift()
    orc = {r.key: r.value for r in shift.aggregate(shift.compute(samples, oracle(samples)))}
    ident = {r.key: r.value for r in shift.aggregate(shift.compute(samples, identity(samples)))}
    assert ident["effect"] == 0 and ident["collateral"] == 0
    assert orc["effect"] > 0.5 and orc["auroc_all"] > ident["auroc_all"]
    demo = DemographicPreservation()
    vals = demo.compute(samples, oracle(samples))
    assert sum(v["sex_agree"] for v in vals) >= 11 and sum(v["group_agree"] for v in vals) >= 11


def test_train_classifier_cli_end_to_end(tmp_path):
    from ix2x.cli.main import main

    out = tmp_path / "clf"
    rc = main(["train-classifier", "--out", str(out), "--n", "30", "--data-size", "48", "--size", "32",
               "--epochs", "1", "--batch-size", "16", "--force"])
    assert rc == 0
    cfg = json.loads((out / "phantom.json").read_text())
    assert set(cfg["scores"]) == {"val", "test_held_out"} and cfg["training"]["n"] == 30
    clf = PhantomClassifier(out / "phantom.safetensors")
    o = clf.predict(torch.rand(2, 1, 48, 48))
    assert o.probs.shape == (2, 8) and torch.all((o.probs >= 0) & (o.probs <= 1))
    assert o.group.shape == (2, 3) and torch.allclose(o.group.sum(1), torch.ones(2))
    assert get_classifier(str(out / "phantom.safetensors")).findings == clf.findings
    clear_cache()
