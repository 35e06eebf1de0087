"""Synthetic sample records in the shape the default suite writes them (``samples.jsonl``), for
timing and checking the end-of-run summary at sizes no CPU run reaches.

Values are random but shaped like the phantom suite's: eight findings with calibrated probabilities
(rounded to 3 decimals, so ties occur as they do for identity and oracle edits), intended labels,
instructed targets, habitus and age, and the per-sample keys of every metric of
``benchmarks/suites/phantom.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ix2x.records import SampleRecord

SUITE = Path(__file__).parents[1] / "suites" / "phantom.yaml"
FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Lung Opacity",
            "Pneumonia", "Pneumothorax")
GROUPS = ("broad", "medium", "slim")


def suite_metrics() -> list[tuple[str, object]]:
    """The default suite's ``(label, metric)`` pairs, as ``finalize`` builds them."""
    from ix2x.benchmarks.runner import resolve
    from ix2x.suite import load_suite

    _, metrics = resolve(load_suite(SUITE))
    return [(c.key, c.cls(c.config)) for c in metrics]


def _probs(rng: np.random.Generator) -> dict[str, float]:
    return {f: float(np.round(rng.uniform(), 3)) for f in FINDINGS}


def _values(rng: np.random.Generator) -> dict[str, dict]:
    intended = {f: int(rng.uniform() < 0.3) for f in FINDINGS}
    targets = [str(f) for f in rng.choice(FINDINGS, size=int(rng.integers(1, 3)), replace=False)]
    for f in targets:
        intended[f] = int(rng.uniform() < 0.7)
    p_in, p_edit, p_target = _probs(rng), _probs(rng), _probs(rng)
    age_in = float(rng.normal(60, 12))
    age_edit, age_target = age_in + float(rng.normal(0, 4)), age_in + float(rng.normal(0, 2))
    g_in, g_edit, g_target = (str(g) for g in rng.choice(GROUPS, size=3))
    sex = "F" if rng.uniform() < 0.5 else "M"
    flip = float(rng.uniform() < 0.5) if rng.uniform() < 0.8 else float("nan")
    return {
        "classifier_shift": {
            "effect": float(rng.uniform(-1, 1)), "flip_rate": flip, "level_effect": float("nan"),
            "level_direction": float("nan"), "collateral": float(rng.uniform(0, 0.3)),
            "p_input": p_in, "p_edit": p_edit, "targets": targets, "intended": intended},
        "demographic_preservation": {
            "sex_agree": float(rng.uniform() < 0.9), "group_agree": float(g_in == g_edit),
            "age_abs_diff": abs(age_edit - age_in), "sex_input": sex, "sex_edit": sex,
            "group_input": g_in, "group_edit": g_edit, "age_input": age_in, "age_edit": age_edit,
            "group_kind": "habitus", "true_age": float(round(age_in)), "true_group": g_in, "true_sex": sex},
        "guidance_localization": {k: float(rng.uniform()) for k in
                                  ("auroc", "iou", "mask_precision", "mask_recall", "pointing_game")},
        "out_of_mask_change": {"changed_fraction": float(rng.uniform()), "locality": float(rng.uniform()),
                               "lpips": float(rng.uniform(0, 0.2)), "mae": float(rng.uniform(0, 0.1)),
                               "mse": float(rng.uniform(0, 0.01)), "psnr": float(rng.uniform(20, 60)),
                               "ssim": float(rng.uniform(0.5, 1))},
        "gt_fidelity": {k: float(rng.uniform()) for k in
                        ("lpips", "lpips_in", "lpips_out", "mae", "mae_in", "mae_out", "ssim", "ssim_in", "ssim_out")},
        "lpips": {"lpips_input": float(rng.uniform(0, 0.2)), "lpips_target": float(rng.uniform(0, 0.2))},
        "cmig": {"p_edit": p_edit, "p_target": p_target, "intended": intended, "group_edit": g_edit,
                 "group_target": g_target, "group_label": g_in, "age_edit": age_edit,
                 "age_target": age_target, "age_label": float(round(age_in)), "label_source": "dataset"},
    }


def synthetic_records(n: int, *, editor: str = "instructx2x", seed: int = 0,
                      samples_per_patient: int = 1) -> list[SampleRecord]:
    """``n`` successful records of one editor; ``samples_per_patient`` > 1 repeats patients (the
    summary then resamples patients, not samples)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        patient = f"p{i // samples_per_patient:06d}"
        out.append(SampleRecord(
            editor=editor, sample_id=f"{patient}-{i:06d}", status="ok", instruction="Add the finding of edema.",
            patient_id=patient, latency_s=float(rng.uniform(0.5, 1.5)), metrics_s=float(rng.uniform(0.05, 0.1)),
            metrics=_values(rng), info={"unet_calls": 62}))
    return out
