"""`identity`: returns the input unchanged. The floor every metric must order correctly:
zero change everywhere, zero effectiveness."""

from __future__ import annotations

from typing import Sequence

from ix2x.types import EditRequest, EditResult, Editor


class Identity(Editor):
    def edit(self, requests: Sequence[EditRequest]) -> list[EditResult]:
        return [EditResult(image=r.image.clone(), info={"model_calls": 0}) for r in requests]
