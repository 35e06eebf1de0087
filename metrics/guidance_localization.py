"""`guidance_localization`: does the editor's own map of where it edits match where the change truly
is? Only phantoms know the true change mask M, so only here can an interpretability map be checked.

- ``auroc``: AUROC of the guidance map (RSE's G, else the binary edit mask) as a per-pixel score for
  M (Mann-Whitney U on tie-averaged ranks: sklearn's ``roc_auc_score`` value, 4x faster).
- ``iou``: IoU of the editor's binary edit mask (its own threshold, e.g. G >= tau) with M;
  ``mask_recall`` (share of M the editor allowed to change) and ``mask_precision``.
- ``pointing_game``: 1 if the guidance map's maximum lies inside M (ties: any maximum pixel).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ix2x.types import EditResult, EmptyConfig, Metric, Sample
from ix2x.types import HeadlineKey
from ix2x.metrics._shared import add_reason, at_eval_size, auroc, nan_values

KEYS = ("auroc", "iou", "mask_recall", "mask_precision", "pointing_game")


def localization_values(truth: torch.Tensor, guidance: torch.Tensor | None,
                        edit_mask: torch.Tensor | None) -> dict[str, Any]:
    """Scores of ``guidance`` (``[0, 1]``) and ``edit_mask`` (``{0, 1}``) against ``truth`` ({0, 1});
    all ``(1, H, W)``. Missing inputs give NaN with the reason."""
    t = truth >= 0.5
    out: dict[str, Any] = {k: math.nan for k in KEYS}
    if not t.any() or t.all():
        add_reason(out, "true mask is empty or the whole image")
        return out
    score = guidance if guidance is not None else edit_mask
    if score is not None and not torch.isfinite(score).all():
        add_reason(out, "auroc: the guidance map has non-finite values")
    elif score is not None:
        out["auroc"] = auroc(t.reshape(-1).numpy(), score.reshape(-1).double().numpy())
    if guidance is not None:
        out["pointing_game"] = float(t[guidance >= guidance.max()].any())
    else:
        add_reason(out, "pointing_game: editor gave no guidance map")
    if edit_mask is not None:
        m = edit_mask >= 0.5
        inter, union = float((m & t).sum()), float((m | t).sum())
        out["iou"] = inter / union
        out["mask_recall"] = inter / float(t.sum())
        out["mask_precision"] = inter / float(m.sum()) if m.any() else math.nan
        if not m.any():
            add_reason(out, "mask_precision: empty edit mask")
    else:
        add_reason(out, "iou: editor gave no edit mask")
    return out


class GuidanceLocalization(Metric):
    Config = EmptyConfig
    higher_is_better = {k: True for k in KEYS}
    requires = frozenset({"region", "guidance"})
    glossary = ("Guidance localisation: does the editor's own map of where it edits (RSE's G, else its "
                "binary edit mask) match the true change mask? Phantoms only; editors without a map are n/a.")
    headline = (
        HeadlineKey("auroc", "guidance AUROC", True, "",
                    "AUROC of the guidance map as a per-pixel score for the true change mask. Range [0, 1], "
                    "0.5 = chance; identity n/a (no map); oracle scores its own change mask."),
    )

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        samples, results = at_eval_size(self, samples, results)
        out = []
        for s, r in zip(samples, results, strict=True):
            if s.region is None:
                out.append(nan_values(KEYS, "sample has no true change mask"))
            elif r.guidance_map is None and r.edit_mask is None:
                out.append(nan_values(KEYS, "editor gave neither a guidance map nor an edit mask"))
            else:
                out.append(localization_values(s.region, r.guidance_map, r.edit_mask))
        return out
