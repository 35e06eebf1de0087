"""Report-style prompts from instructions, for editors that take a description of the image they should
produce rather than an instruction (RoentGen, DiffEdit, RadEdit; the InstructX2X paper gives them
"Mild pulmonary edema." where InstructX2X gets "Add the finding of edema.").

From the parsed ops (:func:`ix2x.data.instructions.parse`), one sentence per op:

- Add X          -> target "X."          source "No X."
- Remove X       -> target "No X."       source "X."
- Change X a->b  -> target "B X."        source "A X."

X keeps the instruction's wording (severity, side, location: "Left pleural effusion.", "No atelectasis in
the left lower lobe."), written by the grammar's own :func:`~ix2x.data.instructions.render_item`. The
source prompt (the input's state) is what DiffEdit contrasts with. A
progression-style target ("New X.", "Resolved X.", "X, now b (was a).") is offered for BiomedJourney, whose
model was trained on progression descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from ix2x.data.instructions import UNREAD_LEVEL, EditOp, parse, render_item

Style = Literal["instruction", "report", "progression"]
STYLES = ("instruction", "report", "progression")


@dataclass(frozen=True)
class Prompts:
    """``target``: the edited image's description; ``source``: the input's."""

    target: str
    source: str


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def report_prompts(ops: Sequence[EditOp]) -> Prompts:
    """Target and source report sentences for ``ops`` (see the module docstring)."""
    if not ops:
        raise ValueError("`ops` must hold at least one EditOp, got none.")
    target, source = [], []
    for op in ops:
        item = render_item(op)
        if op.op == "add":
            target.append(_sentence(item))
            source.append(_sentence("no " + render_item(op, severity=False)))
        elif op.op == "remove":
            target.append(_sentence("no " + render_item(op, severity=False)))
            source.append(_sentence(item))
        else:
            target.append(_sentence(f"{op.to_level} {item}"))
            source.append(_sentence(f"{op.from_level} {item}"))
    return Prompts(" ".join(target), " ".join(source))


def progression_prompt(ops: Sequence[EditOp]) -> str:
    """BiomedJourney-style progression description of ``ops``."""
    out = []
    for op in ops:
        item = render_item(op)
        if op.op == "add":
            out.append(_sentence("new " + item))
        elif op.op == "remove":
            out.append(_sentence("resolved " + item))
        else:
            out.append(_sentence(f"{item}, now {op.to_level} (was {op.from_level})"))
    return " ".join(out)


def prompts_for(instruction: str, style: Style, ops: Sequence[EditOp] | None = None) -> Prompts:
    """The prompts an editor of ``style`` gets for ``instruction``. "instruction" passes it through (its
    source is the empty prompt); the other styles use ``ops``, the instruction's parse when the caller
    has it (a run's request carries it), else parse it, and raise
    :class:`~ix2x.data.instructions.InstructionError` when the grammar cannot read it."""
    if style not in STYLES:
        raise ValueError(f"`prompt` must be one of {', '.join(STYLES)}, got {style!r}.")
    if style == "instruction":
        return Prompts(instruction, "")
    if not ops or any(UNREAD_LEVEL in (o.from_level, o.to_level) for o in ops):
        ops = parse(instruction)  # raises, with the reason, where the run's parse was not clear
    if style == "progression":
        return Prompts(progression_prompt(ops), report_prompts(ops).source)
    return report_prompts(ops)
