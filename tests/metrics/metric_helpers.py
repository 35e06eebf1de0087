"""Phantom samples with exact ground truth, editors' outputs, and a deterministic test classifier
(imported by the metric tests; tests/metrics/conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

from ix2x.classifiers import Outputs, clear_cache, register
from ix2x.classifiers.base import Classifier
from ix2x.data.findings import RSE_FINDINGS
from ix2x.types import EditResult, Sample


def phantom_samples(n: int = 8, size: int = 64, seed: int = 0) -> list[Sample]:
    """Samples exactly as the dataset reader builds them from a phantom folder."""
    from ix2x.data.phantom import findings_report, render_pair

    out = []
    for i in range(n):
        p = render_pair([seed, i], size)
        labels = {"sex": p.patient.sex, "age": round(p.patient.age, 1), "habitus": p.patient.habitus,
                  "findings_past": {k: v.as_json() for k, v in p.findings_past.items()},
                  "findings_current": {k: v.as_json() for k, v in p.findings_current.items()},
                  "ops": [o.as_json() for o in p.ops], "source_report": findings_report(p.findings_past),
                  "target_report": findings_report(p.findings_current)}
        out.append(Sample(f"ph{i:03d}", torch.from_numpy(p.past).float()[None] / 255, p.instruction,
                          target=torch.from_numpy(p.current).float()[None] / 255, target_aligned=True,
                          region=torch.from_numpy(p.mask).float()[None], labels=labels,
                          patient_id=f"p{i:03d}"))
    return out


def identity(samples):
    return [EditResult(image=s.image.clone()) for s in samples]


def oracle(samples):
    return [EditResult(image=s.target.clone(), edit_mask=s.region.clone()) for s in samples]


def blur_everything(samples):
    return [EditResult(image=F.avg_pool2d(s.image[None], 5, 1, 2, count_include_pad=False)[0])
            for s in samples]


def _key(image: torch.Tensor) -> str:
    return hashlib.sha1(image.contiguous().numpy().tobytes()).hexdigest()


class LookupClassifier(Classifier):
    """A perfect classifier on the images it was told about (the phantom's inputs and targets):
    presence 0.9/0.1, levels, true sex/age/habitus. Unknown images get 0.5 everywhere, age 50."""

    findings = RSE_FINDINGS
    attributes = frozenset({"sex", "age", "group"})
    predicts_levels = True

    def __init__(self, samples):
        super().__init__("lookup")
        from ix2x.data.phantom import FINDING_LEVELS, HABITUS

        self.table = {}
        for s in samples:
            for image, key in ((s.image, "findings_past"), (s.target, "findings_current")):
                found = s.labels[key]
                self.table[_key(image)] = (
                    [0.9 if f in found else 0.1 for f in RSE_FINDINGS],
                    [FINDING_LEVELS[f].index(found[f]["level"]) + 1.0 if f in found else 0.0 for f in RSE_FINDINGS],
                    1.0 if s.labels["sex"] == "F" else 0.0, float(s.labels["age"]),
                    [1.0 if h == s.labels["habitus"] else 0.0 for h in HABITUS])
        self.default = ([0.5] * 8, [0.0] * 8, 0.5, 50.0, [1 / 3] * 3)

    def _predict(self, images):
        from ix2x.data.phantom import HABITUS

        rows = [self.table.get(_key(im), self.default) for im in images]
        col = lambda j: torch.tensor([r[j] for r in rows], dtype=torch.float32)  # noqa: E731
        return Outputs(findings=self.findings, probs=col(0), levels=col(1), sex=col(2), age=col(3),
                       group=col(4), group_names=HABITUS, group_kind="habitus")


class Given(torch.nn.Module):
    """torchmetrics' custom feature extractor: the features are the input."""

    def __init__(self, dim):
        super().__init__()
        self.num_features = dim

    def forward(self, x):
        return x.double()
