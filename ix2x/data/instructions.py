"""The MIMIC-EDIT-INSTRUCTION instruction grammar: parse instructions into structured edit ops and
render ops back into instructions.

Grammar (case-insensitive; sentences end with a period, several sentences are joined by spaces)::

    Add the finding(s) of ITEMS.
    Remove the finding(s) of ITEMS.
    Change the level of ITEM from LEVEL to LEVEL.

    ITEMS := ITEM | ITEM and ITEM | ITEM, ITEM, ... and ITEM | ITEM, ITEM, ..., and ITEM
    ITEM  := [MODIFIER ...] FINDING [in the LOCATION WORDS]
    MODIFIER := severity ("mild", "small", "mild to moderate", ...) | side ("left", "right",
                "bilateral") | location word ("lower", "lobe", "basal", ...)

``FINDING`` is any phrase of :data:`SYNONYMS` (the 31 MIMIC-Diff-VQA categories, torchxrayvision's
pathology names and a few plurals and variants); it maps to one canonical name
(:mod:`ix2x.data.findings`). Version-2 location and severity words go to ``EditOp.side``,
``EditOp.location`` and ``EditOp.severity``. Anything else is an :class:`InstructionError` that quotes
the text: the caller decides what to do, nothing falls back to "the whole image" here.

Rendering puts the side before the finding ("left pleural effusion") unless the op also has a
location, which is rendered after it ("atelectasis in the left lower lobe"); both forms parse.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ix2x.data.findings import LATERALITIES, LEVELS
from ix2x.errors import DataError

__all__ = [
    "EditOp", "InstructionError", "UnreadLevels", "UNREAD_LEVEL", "SYNONYMS", "CANONICAL_FINDINGS", "DIFF_VQA_CATEGORIES",
    "SEVERITY_WORDS", "LOCATION_WORDS", "canonical_finding", "finding_phrase", "parse", "render", "render_item",
    "ops_as_json", "ops_from_json", "read_ops", "recorded_ops", "ops_of_sample",
]

OPS: tuple[str, ...] = ("add", "remove", "change")


class InstructionError(DataError):
    """An instruction that the grammar cannot parse. The message quotes the instruction."""


#: The level of a change op whose levels cannot be read in exactly one way (see :class:`UnreadLevels`).
UNREAD_LEVEL = "unread"


class UnreadLevels(InstructionError):
    """An instruction whose findings parse but where some "from A to B" cannot be split in exactly
    one way. ``ops`` holds every op, the unreadable levels as :data:`UNREAD_LEVEL`: callers that need
    only the findings (the pseudo-mask prior, breakdowns by finding) use them and say so, so an
    unreadable level never drops an otherwise clear finding; callers that need levels refuse."""

    def __init__(self, message: str, ops: list["EditOp"]) -> None:
        super().__init__(message)
        self.ops = ops

    def __reduce__(self):  # picklable across worker processes despite the extra argument
        return (type(self), (str(self), self.ops))


# The 31 finding categories of MIMIC-Diff-VQA, each mapped to its canonical name: torchxrayvision's name
# where one exists, otherwise ``str.title()`` of the phrase. (The original RSE code's own list differs:
# ix2x.diffusion.original.VALID_CATEGORIES.)
DIFF_VQA_CATEGORIES: dict[str, str] = {
    "atelectasis": "Atelectasis",
    "blunting of the costophrenic angle": "Effusion",  # a blunted angle is how effusion shows on PA
    "calcification": "Calcification",
    "cardiomegaly": "Cardiomegaly",
    "consolidation": "Consolidation",
    "edema": "Edema",
    "emphysema": "Emphysema",
    # RSE maps cardiac silhouette enlargement to cardiomegaly, not to "Enlarged Cardiomediastinum".
    "enlargement of the cardiac silhouette": "Cardiomegaly",
    "fracture": "Fracture",
    "granuloma": "Granuloma",
    "heart failure": "Heart Failure",
    "hernia": "Hernia",
    "hilar congestion": "Hilar Congestion",
    "hypertensive heart disease": "Hypertensive Heart Disease",
    "infiltration": "Infiltration",
    "lung opacity": "Lung Opacity",
    "mass": "Mass",
    "nodule": "Nodule",
    "pleural effusion": "Effusion",
    "pleural thickening": "Pleural_Thickening",
    "pneumonia": "Pneumonia",
    "pneumothorax": "Pneumothorax",
    "scoliosis": "Scoliosis",
    "tortuosity of the descending aorta": "Tortuosity Of The Descending Aorta",
    "tortuosity of the thoracic aorta": "Tortuosity Of The Thoracic Aorta",
    "vascular congestion": "Vascular Congestion",
    "air collection": "Air Collection",
    "contusion": "Contusion",
    "hematoma": "Hematoma",
    "thymoma": "Thymoma",
    "lung lesion": "Lung Lesion",
}

# torchxrayvision 1.5.7 ``xrv.datasets.default_pathologies`` (copied so that parsing needs no torch).
XRV_PATHOLOGIES: tuple[str, ...] = (
    "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
    "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia",
    "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum",
)

_VARIANTS: dict[str, str] = {
    "effusion": "Effusion",
    "pleural effusions": "Effusion",
    "effusions": "Effusion",
    "blunting of the costophrenic angles": "Effusion",
    "blunted costophrenic angle": "Effusion",
    "blunted costophrenic angles": "Effusion",
    "enlarged cardiac silhouette": "Cardiomegaly",
    "enlargement of the cardiac silhouettes": "Cardiomegaly",
    "pleural_thickening": "Pleural_Thickening",
    "opacity": "Lung Opacity",
    "opacities": "Lung Opacity",
    "lung opacities": "Lung Opacity",
    "infiltrate": "Infiltration",
    "infiltrates": "Infiltration",
    "pulmonary edema": "Edema",
    "pulmonary vascular congestion": "Vascular Congestion",
    "enlarged cardiomediastinum": "Enlarged Cardiomediastinum",
    "fibrosis": "Fibrosis",
    "nodules": "Nodule",
    "masses": "Mass",
    "fractures": "Fracture",
    "granulomas": "Granuloma",
    "calcifications": "Calcification",
    "consolidations": "Consolidation",
    "lung lesions": "Lung Lesion",
    "hematomas": "Hematoma",
    "contusions": "Contusion",
    "hernias": "Hernia",
    "air collections": "Air Collection",
}


def _build_synonyms() -> dict[str, str]:
    table = dict(DIFF_VQA_CATEGORIES)
    for name in XRV_PATHOLOGIES:
        table.setdefault(name.lower(), name)
    for phrase, name in _VARIANTS.items():
        if table.setdefault(phrase, name) != name:
            raise AssertionError(f"synonym {phrase!r} mapped twice")
    return table


#: Lower-case finding phrase -> canonical finding name.
SYNONYMS: dict[str, str] = _build_synonyms()
#: Every canonical name a phrase can map to.
CANONICAL_FINDINGS: frozenset[str] = frozenset(SYNONYMS.values())

# The phrase ``render`` writes for a canonical name (lower case, as MIMIC-Diff-VQA writes it).
_RENDER_PHRASE: dict[str, str] = {
    "Effusion": "pleural effusion",
    "Pleural_Thickening": "pleural thickening",
}

#: Severity words, multi-word ones included (MIMIC-Diff-VQA's level library plus common variants).
SEVERITY_WORDS: tuple[str, ...] = tuple(dict.fromkeys(LEVELS + (
    "minimal", "trace", "tiny", "slight", "subtle", "minor", "massive", "extensive", "acute",
    "mildly", "moderately", "minimally", "increasing", "decreasing",
    "small to moderate", "moderate to severe", "minimal to mild", "mild to severe",
)))

_SIDE_WORDS: dict[str, str] = {
    "left": "left", "right": "right", "bilateral": "bilateral",
    "left-sided": "left", "right-sided": "right", "bilaterally": "bilateral",
}

#: Words allowed before a finding besides severity and side; kept, in order, in ``EditOp.location``.
LOCATION_WORDS: frozenset[str] = frozenset({
    "lower", "upper", "middle", "mid", "lobe", "lobes", "lung", "lungs", "zone", "zones", "base",
    "bases", "basal", "basilar", "bibasilar", "apical", "apex", "apices", "perihilar", "hilar",
    "retrocardiac", "lingula", "lingular", "costophrenic", "subsegmental", "segmental", "pleural",
    "parenchymal", "peripheral", "central", "lateral", "medial", "posterior", "anterior", "area",
    "areas", "region", "field", "fields", "hemithorax", "patchy", "focal", "diffuse", "multifocal",
    "interstitial", "airspace", "linear", "plate-like", "platelike",
})


def canonical_finding(phrase: str) -> str:
    """Canonical name of a finding phrase ("pleural effusion" -> "Effusion"), case-insensitive.

    Raises :class:`InstructionError` naming close matches when the phrase is unknown.
    """
    key = " ".join(str(phrase).lower().split())
    if key in SYNONYMS:
        return SYNONYMS[key]
    for name in CANONICAL_FINDINGS:  # canonical names themselves, any case ("Lung Opacity")
        if key == name.lower():
            return name
    close = difflib.get_close_matches(key, list(SYNONYMS), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise InstructionError(f"unknown finding {phrase!r}.{hint} Known findings: "
                           f"{', '.join(sorted(CANONICAL_FINDINGS))}.")


def finding_phrase(finding: str) -> str:
    """The lower-case phrase :func:`render` writes for a canonical finding name."""
    return _RENDER_PHRASE.get(finding, finding.lower())


@dataclass(frozen=True)
class EditOp:
    """One structured edit: the one op type of the grammar, the phantom generator, the prompts, the
    metrics and the run records.

    ``op`` is "add", "remove" or "change"; ``finding`` a canonical name (see :func:`canonical_finding`);
    ``side`` is "left", "right", "bilateral" or None; ``location`` other location words as text
    ("lower lobe"); ``severity`` a severity word the instruction writes before an added or removed
    finding ("mild"). ``phrase`` is the finding as written in the instruction (kept so that rendering
    reproduces it; ignored by ``==``).

    Levels: ``from_level`` and ``to_level`` are the finding's level before and after the edit.
    A "change" op states both (the grammar needs them; :func:`render` writes them). An "add" op has
    no ``from_level`` and a "remove" op no ``to_level``; their other level is the finding's true
    level where a data source knows it without the instruction stating it: the phantom generator's
    ground truth (an "Add the finding of left pleural effusion." that adds a moderate one carries
    ``to_level="moderate"``). It is never rendered and the parser never sets it; a level an
    instruction writes for an added or removed finding is that op's ``severity``.
    """

    op: str
    finding: str
    from_level: str | None = None
    to_level: str | None = None
    side: str | None = None
    location: str | None = None
    severity: str | None = None
    phrase: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"`op` must be one of {OPS}, got {self.op!r}.")
        if self.finding not in CANONICAL_FINDINGS:
            raise ValueError(f"`finding` must be a canonical finding name, got {self.finding!r}. "
                             "Map phrases with ix2x.data.instructions.canonical_finding().")
        if self.op == "change" and (self.from_level is None or self.to_level is None):
            raise ValueError("a 'change' op needs `from_level` and `to_level`, got "
                             f"{self.from_level!r} and {self.to_level!r}.")
        if self.op == "add" and self.from_level is not None:
            raise ValueError(f"an 'add' op has no level before the edit, got from_level={self.from_level!r}. "
                             "The level of the added finding is `to_level` (or `severity` when the "
                             "instruction states it).")
        if self.op == "remove" and self.to_level is not None:
            raise ValueError(f"a 'remove' op has no level after the edit, got to_level={self.to_level!r}. "
                             "The level of the removed finding is `from_level` (or `severity` when the "
                             "instruction states it).")
        if self.side is not None and self.side not in LATERALITIES:
            raise ValueError(f"`side` must be one of {LATERALITIES} or None, got {self.side!r}.")

    def as_json(self) -> dict[str, Any]:
        """A JSON object: ``op``, ``finding``, ``side``, ``from_level`` and ``to_level`` always (the
        phantom's ``ops`` column holds exactly these), ``location``, ``severity`` and ``phrase`` when set."""
        out: dict[str, Any] = {"op": self.op, "finding": self.finding, "side": self.side,
                               "from_level": self.from_level, "to_level": self.to_level}
        for name in _OPTIONAL_JSON:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_json(cls, value: Any) -> "EditOp":
        """The op of :meth:`as_json`'s object; ``ValueError`` naming what is wrong."""
        if not isinstance(value, Mapping):
            raise ValueError(f"an edit op must be a JSON object, got {type(value).__name__}: {value!r}.")
        unknown = sorted(set(value) - _JSON_KEYS)
        if unknown:
            raise ValueError(f"unknown edit op field(s) {', '.join(unknown)} in {dict(value)!r}; "
                             f"known: {', '.join(sorted(_JSON_KEYS))}.")
        if "op" not in value or "finding" not in value:
            raise ValueError(f"an edit op needs `op` and `finding`, got {dict(value)!r}.")
        return cls(**value)


_OPTIONAL_JSON = ("location", "severity", "phrase")
_JSON_KEYS = frozenset({"op", "finding", "side", "from_level", "to_level", *_OPTIONAL_JSON})


def ops_as_json(ops: Iterable[EditOp]) -> list[dict[str, Any]]:
    """``[op.as_json() for op in ops]``."""
    return [op.as_json() for op in ops]


def ops_from_json(value: Any) -> list[EditOp]:
    """Ops from a JSON list (or its text) of :meth:`EditOp.as_json` objects."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"edit ops must be a JSON list, got {type(value).__name__}: {value!r}.")
    return [EditOp.from_json(v) for v in value]


# --------------------------------------------------------------------------------------- parsing

_SENTENCE_PATTERNS = (
    ("add", re.compile(r"^add the findings? of (?P<items>.+)$")),
    ("remove", re.compile(r"^remove the findings? of (?P<items>.+)$")),
    ("change", re.compile(r"^change the levels? of (?P<item>.+?) from (?P<levels>.+)$")),
)
_LIST_SPLIT = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+")
_TRAILING_LOCATION = re.compile(r"^(?P<head>.+?)\s+in the\s+(?P<where>.+)$")
_MAX_SEVERITY_WORDS = max(len(s.split()) for s in SEVERITY_WORDS)


def split_sentences(text: str) -> list[str]:
    """Split on periods; the last sentence may lack one. Whitespace is collapsed, case is kept."""
    flat = " ".join(str(text).split())
    parts = [p.strip() for p in re.split(r"\.(?:\s+|$)", flat)]
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def parse(text: str) -> list[EditOp]:
    """Parse an instruction into edit ops, in the order they are written.

    >>> parse("Add the finding of left pleural effusion.")[0].side
    'left'

    Raises :class:`InstructionError` (quoting ``text``) when any part of it does not parse.
    """
    if not isinstance(text, str):
        raise InstructionError(f"instruction must be a string, got {type(text).__name__}: {text!r}.")
    sentences = split_sentences(text)
    if not sentences:
        raise InstructionError(f"empty instruction {text!r}.")
    ops: list[EditOp] = []
    unread: list[str] = []
    for number, sentence in enumerate(sentences, start=1):
        where = f" (sentence {number}: {sentence!r})" if len(sentences) > 1 else ""
        try:
            ops.extend(_parse_sentence(sentence))
        except _LevelsUnread as e:
            ops.append(e.op)
            unread.append(f"{e}{where}")
        except InstructionError as e:
            raise InstructionError(f"cannot parse instruction {text!r}{where}: {e}") from None
    if unread:
        kept = ", ".join(o.finding for o in ops if o.from_level == UNREAD_LEVEL)
        raise UnreadLevels(f"cannot read the levels of instruction {text!r}: {'; '.join(unread)}; "
                           f"its findings are clear and kept, with levels {UNREAD_LEVEL!r}: {kept}.", ops)
    return ops


def read_ops(text: str) -> list[EditOp] | None:
    """The ops of an instruction as a run records them: :func:`parse`'s, the ops of an
    :class:`UnreadLevels` instruction with its levels :data:`UNREAD_LEVEL` (its findings are clear),
    None when the grammar cannot read it."""
    try:
        return parse(text)
    except UnreadLevels as e:
        return list(e.ops)
    except InstructionError:
        return None


def ops_of_sample(sample: Any) -> tuple[EditOp, ...]:
    """A :class:`~ix2x.types.Sample`'s ops: the parse its dataset reader made (``sample.ops``), or,
    for a sample made without one, its instruction's :func:`read_ops` now. ``()``: the grammar
    cannot read the instruction."""
    ops = getattr(sample, "ops", None)
    return tuple(ops) if ops is not None else tuple(read_ops(sample.instruction) or ())


def recorded_ops(record: Mapping[str, Any]) -> list[EditOp] | None:
    """The parsed ops of a run record (a line of ``samples.jsonl``, as a dict): its ``ops``, written
    once when the run made it (``[]``: the grammar could not read the instruction; None is returned
    then). Records of runs from before the field was written have no ``ops``: their instruction is
    parsed now (:func:`read_ops`), which gives what the run would have written."""
    ops = record.get("ops")
    if ops is None:
        return read_ops(record.get("instruction") or "")
    return ops_from_json(ops) or None


class _LevelsUnread(InstructionError):
    """A change sentence whose finding parsed and whose levels did not; ``op`` keeps the finding."""

    def __init__(self, message: str, op: EditOp) -> None:
        super().__init__(message)
        self.op = op


def _parse_sentence(sentence: str) -> list[EditOp]:
    lowered = sentence.lower()
    if not lowered:
        raise InstructionError("empty sentence (two periods in a row?).")
    for op, pattern in _SENTENCE_PATTERNS:
        m = pattern.match(lowered)
        if m is None:
            continue
        if op == "change":
            item = _parse_item(m["item"])
            try:
                from_level, to_level = _split_levels(m["levels"])
            except InstructionError as e:
                raise _LevelsUnread(str(e), EditOp("change", from_level=UNREAD_LEVEL, to_level=UNREAD_LEVEL,
                                                   **item)) from None
            return [EditOp("change", from_level=from_level, to_level=to_level, **item)]
        items = [s for s in _LIST_SPLIT.split(m["items"])]
        if any(not s for s in items):
            raise InstructionError(f"empty item in the finding list {m['items']!r}.")
        return [EditOp(op, **_parse_item(s)) for s in items]
    raise InstructionError(
        "expected 'Add the finding(s) of X.', 'Remove the finding(s) of X.' or "
        "'Change the level of X from A to B.'")


def _split_levels(text: str) -> tuple[str, str]:
    """Split "A to B" where A and B may themselves contain "to" ("mild to moderate").

    Tie-break: when several splits give two known severity words, the split whose two levels are
    both on Medical-Diff-VQA's own level list (:data:`LEVELS`, which has the compounds "mild to
    moderate" and "moderate to large") wins: "mild to moderate to severe" is "mild to moderate" ->
    "severe", not "mild" -> "moderate to severe" (a variant Diff-VQA never writes). Splits that stay
    tied ("mild to moderate to large": both readings are on the list) are refused."""
    words = text.split()
    cuts = [i for i, w in enumerate(words) if w == "to" and 0 < i < len(words) - 1]
    if not cuts:
        raise InstructionError(f"expected levels 'from A to B', got 'from {text}'.")
    known = set(SEVERITY_WORDS)
    candidates = [(" ".join(words[:i]), " ".join(words[i + 1:])) for i in cuts]
    valid = [c for c in candidates if c[0] in known and c[1] in known]
    if len(valid) > 1:
        valid = [c for c in valid if c[0] in LEVELS and c[1] in LEVELS] or valid
    if len(valid) == 1:
        return valid[0]
    if len(valid) > 1:
        readings = "; ".join(f"from {a!r} to {b!r}" for a, b in valid)
        raise InstructionError(f"ambiguous levels 'from {text}': could read {readings}.")
    if len(candidates) == 1:  # unknown level words, but only one way to read them: keep as written
        return candidates[0]
    raise InstructionError(f"cannot tell the two levels apart in 'from {text}'.")


def _parse_item(text: str) -> dict:
    """One finding with its modifiers -> keyword arguments of :class:`EditOp`."""
    where_words: list[str] = []
    m = _TRAILING_LOCATION.match(text)
    if m is not None:
        text, where_words = m["head"], m["where"].split()
    words = text.split()
    start = next((i for i in range(len(words)) if " ".join(words[i:]) in SYNONYMS), None)
    if start is None:
        close = difflib.get_close_matches(" ".join(words[-3:]), list(SYNONYMS), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InstructionError(f"no known finding in {text!r}.{hint}")
    phrase = " ".join(words[start:])
    severity, sides, location = _parse_modifiers(words[:start], phrase)
    for w in where_words:  # "in the left lower lobe": side words go to side, the rest is kept
        if w in _SIDE_WORDS:
            sides.append(_SIDE_WORDS[w])
        else:
            location.append(w)
    if len(set(sides)) > 1:
        raise InstructionError(f"conflicting sides {sorted(set(sides))} for {phrase!r}.")
    return dict(finding=SYNONYMS[phrase], side=sides[0] if sides else None,
                location=" ".join(location) or None, severity=severity, phrase=phrase)


def _parse_modifiers(words: list[str], phrase: str) -> tuple[str | None, list[str], list[str]]:
    severity, sides, location = None, [], []
    i = 0
    while i < len(words):
        for n in range(min(_MAX_SEVERITY_WORDS, len(words) - i), 0, -1):
            candidate = " ".join(words[i:i + n])
            if candidate in SEVERITY_WORDS:
                if severity is not None:
                    raise InstructionError(f"two severities ({severity!r}, {candidate!r}) for {phrase!r}.")
                severity, i = candidate, i + n
                break
        else:
            w = words[i]
            if w in _SIDE_WORDS:
                sides.append(_SIDE_WORDS[w])
            elif w in LOCATION_WORDS:
                location.append(w)
            else:
                raise InstructionError(f"unknown word {w!r} before the finding {phrase!r} (known "
                                       "modifiers are severity, side and location words).")
            i += 1
    return severity, sides, location


# ------------------------------------------------------------------------------------- rendering

def render(ops: Iterable[EditOp]) -> str:
    """Render ops as an instruction in the grammar :func:`parse` reads (its inverse up to wording).

    Consecutive "add" ops share one sentence ("Add the findings of X, Y and Z."), as do consecutive
    "remove" ops; each "change" op is its own sentence. Sentences are joined by a space.

    The one instruction renderer: the phantom generator writes its instructions with it (after
    :func:`ix2x.data.phantom.order_ops`), the ``axiomatic`` metric its inverse instructions, and
    :mod:`ix2x.data.prompts` its report sentences from :func:`render_item`.
    """
    ops = list(ops)
    if not ops:
        raise ValueError("`ops` must hold at least one EditOp, got none.")
    sentences: list[str] = []
    i = 0
    while i < len(ops):
        op = ops[i]
        if not isinstance(op, EditOp):
            raise TypeError(f"`ops` must hold EditOp objects, got {type(op).__name__}.")
        if op.op == "change":
            sentences.append(f"Change the level of {render_item(op)} from {op.from_level} to {op.to_level}.")
            i += 1
            continue
        j = i
        while j < len(ops) and isinstance(ops[j], EditOp) and ops[j].op == op.op:
            j += 1
        items = [render_item(o) for o in ops[i:j]]
        noun = "finding" if len(items) == 1 else "findings"
        listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
        sentences.append(f"{op.op.capitalize()} the {noun} of {listed}.")
        i = j
    return " ".join(sentences)


def render_item(op: EditOp, *, severity: bool = True) -> str:
    """One finding as :func:`render` writes it: ``[severity] [side] phrase`` ("mild left pleural
    effusion"), or ``[severity] phrase in the [side] location`` when the op has a location. The
    phrase is the op's own wording when it names the op's finding, else :func:`finding_phrase`.
    ``severity=False`` leaves the severity word out (report prompts write "No left pleural effusion.")."""
    phrase = op.phrase if op.phrase and SYNONYMS.get(op.phrase) == op.finding else finding_phrase(op.finding)
    words = [op.severity] if (severity and op.severity) else []
    if op.location:
        words.append(phrase)
        words.append("in the " + " ".join(w for w in (op.side, op.location) if w))
    else:
        words.extend(w for w in (op.side, phrase) if w)
    return " ".join(words)


def findings_of(ops: Sequence[EditOp]) -> list[str]:
    """Canonical findings named by ``ops``, first occurrence first, without repeats."""
    return list(dict.fromkeys(op.finding for op in ops))
