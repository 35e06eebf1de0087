"""Canonical finding names, shared by the grammar, the pseudo-masks, the phantoms and the metrics.

Canonical names are torchxrayvision's pathology names (Title Case), which are also the names in the
original RSE pseudo-mask files (``pseudo_mask_{name}.npy``).
"""

from __future__ import annotations

# The eight findings the original RSE ships pseudo-masks for; the phantom generator draws these.
RSE_FINDINGS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
    "Effusion", "Lung Opacity", "Pneumonia", "Pneumothorax",
)

# Severity words that appear in MIMIC-Diff-VQA level changes, mildest first.
LEVELS: tuple[str, ...] = ("small", "mild", "mild to moderate", "moderate", "moderate to large",
                           "large", "severe")

LATERALITIES: tuple[str, ...] = ("left", "right", "bilateral")
