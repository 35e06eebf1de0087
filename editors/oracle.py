"""`oracle`: returns the dataset's true target image. The ceiling every metric must order correctly.

The one editor that sees ground truth (``uses_ground_truth``). It is only meaningful where the
target is pixel-aligned with the input (phantoms without pose jitter); on real follow-up studies
the "target" differs in pose and exposure, so the oracle refuses rather than report a fake ceiling.
"""

from __future__ import annotations

from typing import Sequence

from ix2x.errors import DataError
from ix2x.types import EditRequest, EditResult, Editor


class Oracle(Editor):
    uses_ground_truth = True

    def edit(self, requests: Sequence[EditRequest]) -> list[EditResult]:
        results = []
        for r in requests:
            if r.target is None:
                raise DataError(
                    f"oracle needs a pixel-aligned target image for sample {r.sample_id!r}, and this "
                    "dataset has none (real follow-up studies are not aligned). Use the oracle on "
                    "phantom data, or leave it out of the suite."
                )
            if r.target.shape != r.image.shape:
                raise DataError(
                    f"oracle: target shape {tuple(r.target.shape)} differs from input shape "
                    f"{tuple(r.image.shape)} for sample {r.sample_id!r}."
                )
            results.append(EditResult(image=r.target.clone(), edit_mask=(r.target != r.image).float(),
                                      info={"model_calls": 0}))
        return results
