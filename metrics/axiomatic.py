"""`axiomatic`: two soundness properties of counterfactual editors, after Monteiro et al. 2023
("Measuring axiomatic soundness of counterfactual image models", ICLR 2023), adapted to
instruction editing. Both edit again, so a suite opts in by listing this metric.

- ``reversibility``: apply the inverse instruction (Add X <-> Remove X, Change X from A to B <->
  from B to A) to the edit; MAE between that and the input. 0: the edit can be undone exactly.
- ``idempotence_drift``: apply the same instruction to the edit again; MAE between the second and
  the first edit. Monteiro's composition axiom says a null intervention applied repeatedly must not
  drift; asking for a finding the image already has is the null intervention of instruction editing.

Re-edits use their own per-sample seeds, derived from (seed, sample_id + suffix).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

from ix2x.seeding import sample_seed
from ix2x.types import EditRequest, EditResult, EditsAgain, Metric, Sample, fill_batch
from ix2x.types import HeadlineKey

SUFFIX = {"reverse": "#axiomatic-reverse", "repeat": "#axiomatic-repeat"}


def inverse_instruction(instruction: str) -> str:
    """The instruction that undoes ``instruction`` (raises InstructionError if it does not parse)."""
    from ix2x.data.instructions import parse, render

    flip = {"add": "remove", "remove": "add", "change": "change"}
    # Before and after swap places: a change's levels, and an added finding's level when an op knows it.
    return render([dataclasses.replace(op, op=flip[op.op], from_level=op.to_level, to_level=op.from_level)
                   for op in parse(instruction)])


def mae(a, b) -> float:
    return float((a.double() - b.double()).abs().mean())


class Axiomatic(EditsAgain, Metric):
    higher_is_better = {"reversibility": False, "idempotence_drift": False}
    glossary = ("Axiomatic soundness (Monteiro et al. 2023): the editor is run again on its own edit. "
                "Editors that edit from ground truth (oracle) are n/a.")
    headline = (
        HeadlineKey("reversibility", "reversibility error", False, "",
                    "MAE between the input and the edit undone by the inverse instruction. 0 = the edit can "
                    "be undone exactly; identity 0."),
        HeadlineKey("idempotence_drift", "idempotence drift", False, "",
                    "MAE between the edit and the same instruction applied to it again. 0 = no drift; "
                    "identity 0."),
    )

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        from ix2x.data.instructions import InstructionError

        if self.editor is None:
            raise RuntimeError("axiomatic needs the editor: the runner binds it with bind_editor().")
        out: list[dict[str, Any]] = [{"reversibility": math.nan, "idempotence_drift": math.nan}
                                     for _ in samples]
        if getattr(self.editor, "uses_ground_truth", False):
            for values in out:
                values["nan_reason"] = "the editor edits from ground truth, which re-edits do not have"
            return out
        reverse, repeat = [], []
        for i, (s, r) in enumerate(zip(samples, results, strict=True)):
            repeat.append((i, self._request(s, r, s.instruction, "repeat")))
            try:
                reverse.append((i, self._request(s, r, inverse_instruction(s.instruction), "reverse")))
            except InstructionError as e:
                out[i]["nan_reason"] = f"reversibility: no inverse instruction ({e})"
        for key, jobs, reference in (("reversibility", reverse, lambda i: samples[i].image),
                                     ("idempotence_drift", repeat, lambda i: results[i].image)):
            if not jobs:
                continue
            for (i, _), again in zip(jobs, self._edit([req for _, req in jobs]), strict=True):
                out[i][key] = mae(again.image, reference(i))
        return out

    def _edit(self, requests: list[EditRequest]) -> list[EditResult]:
        """Re-edits in full batches of the run's batch size, as the runner makes the first edits: the
        values then do not depend on how many samples of a batch could be re-edited."""
        out: list[EditResult] = []
        for i in range(0, len(requests), self.batch_size):
            chunk = requests[i:i + self.batch_size]
            out += self.editor.edit(fill_batch(self.editor, chunk, self.batch_size))[:len(chunk)]
        return out

    def _request(self, s: Sample, r: EditResult, instruction: str, kind: str) -> EditRequest:
        sid = s.sample_id + SUFFIX[kind]
        # The edit stands for the target study: the inverse goes from the target's report back to the
        # source's; the repeat asks for the target again.
        src, tgt = s.labels.get("source_report"), s.labels.get("target_report")
        reports = (tgt, src) if kind == "reverse" else (tgt, tgt)
        # A copy: the edit is scored by the other metrics too, and an editor may work in place.
        return EditRequest(sid, r.image.clone(), instruction, sample_seed(self.seed, sid),
                           source_report=reports[0], target_report=reports[1])
