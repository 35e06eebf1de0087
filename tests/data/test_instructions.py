"""Instruction grammar: parsed fields, synonyms, errors and render-then-parse round trips."""

import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from ix2x.data.findings import LATERALITIES, LEVELS, RSE_FINDINGS
from ix2x.data.instructions import (
    CANONICAL_FINDINGS, DIFF_VQA_CATEGORIES, LOCATION_WORDS, SEVERITY_WORDS, SYNONYMS, XRV_PATHOLOGIES,
    EditOp, InstructionError, canonical_finding, finding_phrase, ops_as_json, ops_from_json, parse, render,
)
from ix2x.errors import DataError


def test_phantom_instructions_parse_to_expected_ops():
    assert parse("Add the finding of left pleural effusion.") == [EditOp("add", "Effusion", side="left")]
    assert parse("Add the findings of edema and cardiomegaly.") == [
        EditOp("add", "Edema"), EditOp("add", "Cardiomegaly")]
    assert parse("Change the level of pleural effusion from small to moderate.") == [
        EditOp("change", "Effusion", from_level="small", to_level="moderate")]
    assert parse("Remove the finding of right pneumothorax.") == [EditOp("remove", "Pneumothorax", side="right")]


def test_lists_with_and_without_oxford_comma_and_several_sentences():
    expected = [EditOp("add", "Edema"), EditOp("add", "Atelectasis"), EditOp("add", "Mass")]
    assert parse("Add the findings of edema, atelectasis and mass.") == expected
    assert parse("Add the findings of edema, atelectasis, and mass.") == expected
    ops = parse("Remove the finding of nodule. Change the level of edema from mild to moderate. "
                "Add the finding of pneumonia.")
    assert [(o.op, o.finding) for o in ops] == [("remove", "Nodule"), ("change", "Edema"), ("add", "Pneumonia")]
    assert (ops[1].from_level, ops[1].to_level) == ("mild", "moderate")


def test_version2_modifiers_go_to_their_fields():
    (op,) = parse("Add the finding of mild left lower lobe atelectasis.")
    assert (op.severity, op.side, op.location, op.finding) == ("mild", "left", "lower lobe", "Atelectasis")
    (op,) = parse("Add the finding of mild edema.")
    assert (op.severity, op.side, op.location) == ("mild", None, None)
    (op,) = parse("add the finding of pleural effusion in the left lung")  # lower case, no period
    assert (op.finding, op.side, op.location) == ("Effusion", "left", "lung")
    (op,) = parse("Add the finding of moderate to large bilateral pleural effusions.")
    assert (op.severity, op.side, op.finding, op.phrase) == (
        "moderate to large", "bilateral", "Effusion", "pleural effusions")
    (op,) = parse("Change the level of right upper lung opacity from mild to severe.")
    assert (op.finding, op.side, op.location, op.from_level, op.to_level) == (
        "Lung Opacity", "right", "upper", "mild", "severe")


def test_compound_levels_are_split_when_only_one_reading_is_known():
    (op,) = parse("Change the level of edema from moderate to large to small.")
    assert (op.from_level, op.to_level) == ("moderate to large", "small")
    (op,) = parse("Change the level of edema from small to mild to moderate.")
    assert (op.from_level, op.to_level) == ("small", "mild to moderate")
    (op,) = parse("Change the level of edema from hazy to dense.")  # unknown words, one reading: kept
    assert (op.from_level, op.to_level) == ("hazy", "dense")
    with pytest.raises(InstructionError, match="ambiguous levels"):
        parse("Change the level of edema from mild to moderate to large.")


def test_diff_vqa_compound_levels_win_a_tie():
    """Regression: "from mild to moderate to severe" was refused, as two readings use known words
    ("mild" -> "moderate to severe"). Medical-Diff-VQA's level list has "mild to moderate", not
    "moderate to severe", so its reading wins (the tie-break in _split_levels' docstring)."""
    from ix2x.data.findings import LEVELS

    assert "mild to moderate" in LEVELS and "moderate to severe" not in LEVELS
    (op,) = parse("Change the level of edema from mild to moderate to severe.")
    assert (op.finding, op.from_level, op.to_level) == ("Edema", "mild to moderate", "severe")
    (op,) = parse("Change the level of pleural effusion from small to moderate to large.")
    assert (op.from_level, op.to_level) == ("small", "moderate to large")


def test_unreadable_levels_keep_the_clear_findings():
    """An instruction whose levels cannot be split in one way is refused for its levels only: the
    error carries every op, the findings intact, so nothing that needs only findings drops them."""
    from ix2x.data.instructions import UNREAD_LEVEL, UnreadLevels

    text = "Change the level of edema from mild to moderate to large. Add the finding of left pneumothorax."
    with pytest.raises(UnreadLevels, match="ambiguous levels") as caught:
        parse(text)
    assert [(o.op, o.finding, o.side, o.from_level) for o in caught.value.ops] == [
        ("change", "Edema", None, UNREAD_LEVEL), ("add", "Pneumothorax", "left", None)]
    assert "Edema" in str(caught.value)
    # A finding the grammar does not know is still a plain refusal, not a partial reading.
    with pytest.raises(InstructionError) as caught:
        parse("Change the level of wobble from mild to moderate to large.")
    assert not isinstance(caught.value, UnreadLevels)


def test_unreadable_levels_keep_the_prior_the_breakdown_and_the_metric_reason():
    from ix2x.diffusion.editor import pseudo_mask_for
    from ix2x.metrics._shared import edit_ops
    from ix2x.reports.data import facets
    from ix2x.types import Sample

    text = "Change the level of pleural effusion from mild to moderate to large."
    mask, info = pseudo_mask_for(text, 64, "atlas")
    assert info["findings"] == ["Effusion"] and 0 < float(mask.mean()) < 0.9  # not the whole image
    assert any("levels not understood" in w for w in info["warnings"])
    assert facets(text)[:2] == ("change", ("Effusion",))
    import torch

    ops = edit_ops(Sample(sample_id="s", image=torch.zeros(1, 8, 8), instruction=text))
    assert [o.finding for o in ops] == ["Effusion"]
    from ix2x.metrics.classifier_shift import shift_values

    v = shift_values({"Effusion": 0.4}, {"Effusion": 0.6}, ops, levels_in={"Effusion": 1.0},
                     levels_out={"Effusion": 2.0})
    assert math.isnan(v["level_effect"]) and "no level change read" in v["nan_reason"]


def test_synonyms_cover_the_31_categories_and_xrv_names():
    assert len(DIFF_VQA_CATEGORIES) == 31
    assert canonical_finding("enlargement of the cardiac silhouette") == "Cardiomegaly"
    assert canonical_finding("Pleural Effusion") == canonical_finding("effusion") == "Effusion"
    assert canonical_finding("blunting of the costophrenic angle") == "Effusion"
    assert canonical_finding("pleural thickening") == "Pleural_Thickening"
    assert canonical_finding("lung opacity") == "Lung Opacity"
    assert canonical_finding("LUNG LESION") == "Lung Lesion"
    assert canonical_finding("hilar congestion") == "Hilar Congestion"
    assert canonical_finding("tortuosity of the descending aorta") == "Tortuosity Of The Descending Aorta"
    for name in XRV_PATHOLOGIES:
        assert canonical_finding(name) == name
    assert set(RSE_FINDINGS) <= CANONICAL_FINDINGS
    for name in CANONICAL_FINDINGS:  # rendering a name and reading it back is the identity
        assert SYNONYMS[finding_phrase(name)] == name


def test_xrv_names_match_the_installed_torchxrayvision():
    xrv = pytest.importorskip("torchxrayvision")
    assert tuple(xrv.datasets.default_pathologies) == XRV_PATHOLOGIES


@pytest.mark.parametrize("text, fragment", [
    ("", "empty instruction"),
    ("   ", "empty instruction"),
    ("Make it look healthier.", "expected 'Add the finding"),
    ("Add the finding of unicorns.", "no known finding"),
    ("Add the finding of purple edema.", "unknown word 'purple'"),
    ("Add the finding of left edema in the right lung.", "conflicting sides"),
    ("Add the findings of edema, and.", "no known finding"),
    ("Change the level of edema to moderate.", "expected 'Add the finding"),
    ("Add the finding of edema. Remove it.", "sentence 2"),
])
def test_unparsable_text_raises_quoting_it(text, fragment):
    with pytest.raises(InstructionError, match=fragment) as info:
        parse(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, DataError)


def test_unknown_finding_suggests_close_names():
    with pytest.raises(InstructionError, match="Did you mean 'pneumothorax'"):
        canonical_finding("pneumothorx")


def test_render_groups_consecutive_adds_and_removes():
    ops = [EditOp("add", "Edema"), EditOp("add", "Cardiomegaly"), EditOp("add", "Effusion", side="left"),
           EditOp("remove", "Pneumothorax", side="right"),
           EditOp("change", "Atelectasis", from_level="mild", to_level="moderate", side="left",
                  location="lower lobe")]
    assert render(ops) == (
        "Add the findings of edema, cardiomegaly and left pleural effusion. "
        "Remove the finding of right pneumothorax. "
        "Change the level of atelectasis in the left lower lobe from mild to moderate.")
    assert render([EditOp("add", "Edema", severity="mild")]) == "Add the finding of mild edema."
    with pytest.raises(ValueError, match="at least one"):
        render([])


def test_render_keeps_the_phrase_as_written():
    ops = parse("Add the finding of blunting of the costophrenic angle.")
    assert ops == [EditOp("add", "Effusion")]
    assert render(ops) == "Add the finding of blunting of the costophrenic angle."


def test_editop_rejects_inconsistent_fields():
    with pytest.raises(ValueError, match="canonical"):
        EditOp("add", "pleural effusion")
    with pytest.raises(ValueError, match="needs `from_level`"):
        EditOp("change", "Edema", from_level="mild")
    with pytest.raises(ValueError, match="no level before the edit"):
        EditOp("add", "Edema", from_level="mild")
    with pytest.raises(ValueError, match="no level after the edit"):
        EditOp("remove", "Edema", to_level="mild")
    with pytest.raises(ValueError, match="`side`"):
        EditOp("add", "Edema", side="up")
    with pytest.raises(ValueError, match="`op`"):
        EditOp("grow", "Edema")


def test_known_level_of_an_added_or_removed_finding_is_kept_but_not_rendered():
    # The phantom's ground truth: the instruction names no level, the op knows it.
    ops = [EditOp("add", "Effusion", side="left", to_level="moderate"),
           EditOp("remove", "Edema", from_level="mild")]
    assert render(ops) == "Add the finding of left pleural effusion. Remove the finding of edema."
    assert [(o.op, o.finding, o.side) for o in parse(render(ops))] == [(o.op, o.finding, o.side) for o in ops]


def test_edit_op_json_round_trip_and_its_errors():
    ops = parse("Add the finding of mild pleural effusions in the left lower lobe. "
                "Change the level of edema from mild to moderate.")
    data = ops_as_json(ops)
    # The phantom's five keys always, the rest only when set.
    assert data[0] == {"op": "add", "finding": "Effusion", "side": "left", "from_level": None, "to_level": None,
                       "location": "lower lobe", "severity": "mild", "phrase": "pleural effusions"}
    assert set(data[1]) == {"op", "finding", "side", "from_level", "to_level", "phrase"}
    again = ops_from_json(json.dumps(data))
    assert again == ops and [o.phrase for o in again] == [o.phrase for o in ops]
    assert render(again) == render(ops)
    with pytest.raises(ValueError, match="unknown edit op field.*level"):
        EditOp.from_json({"op": "add", "finding": "Edema", "level": "mild"})
    with pytest.raises(ValueError, match="needs `op` and `finding`"):
        EditOp.from_json({"op": "add"})
    with pytest.raises(ValueError, match="must be a JSON list"):
        ops_from_json({"op": "add"})


# ---------------------------------------------------------------- property: render then parse

_findings = st.sampled_from(sorted(CANONICAL_FINDINGS))
_sides = st.sampled_from((None,) + LATERALITIES)
_locations = st.one_of(st.none(), st.lists(st.sampled_from(sorted(LOCATION_WORDS)), min_size=1,
                                           max_size=3).map(" ".join))
_severities = st.one_of(st.none(), st.sampled_from(SEVERITY_WORDS))
_simple_levels = st.sampled_from([s for s in SEVERITY_WORDS if " " not in s])


@st.composite
def _ops(draw, levels=_simple_levels):
    kind = draw(st.sampled_from(("add", "remove", "change")))
    levels_kw = {"from_level": draw(levels), "to_level": draw(levels)} if kind == "change" else {}
    return EditOp(kind, draw(_findings), side=draw(_sides), location=draw(_locations),
                  severity=draw(_severities), **levels_kw)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ops(), min_size=1, max_size=5))
def test_render_then_parse_round_trips(ops):
    assert parse(render(ops)) == ops


@settings(max_examples=200, deadline=None)
@given(_ops(levels=st.sampled_from(SEVERITY_WORDS)).filter(lambda o: o.op == "change"))
def test_compound_levels_round_trip_unless_genuinely_ambiguous(op):
    text = render([op])
    words = f"{op.from_level} to {op.to_level}".split()
    readings = {(" ".join(words[:i]), " ".join(words[i + 1:])) for i, w in enumerate(words)
                if w == "to" and 0 < i < len(words) - 1}
    known = {r for r in readings if set(r) <= set(SEVERITY_WORDS)}
    preferred = {r for r in known if set(r) <= set(LEVELS)} or known  # the documented tie-break
    if len(known) > 1 and len(preferred) > 1:
        with pytest.raises(InstructionError, match="ambiguous"):
            parse(text)
    elif len(known) > 1:
        (got,) = parse(text)
        assert (got.from_level, got.to_level) == next(iter(preferred))
    else:
        assert parse(text) == [op]
