"""Phantom generator: exact change masks, determinism, labels, layout, laterality, CLI."""

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ix2x.data.findings import LEVELS, RSE_FINDINGS
from ix2x.data.instructions import EditOp, finding_phrase, render
from ix2x.data.phantom import (
    CSV_COLUMNS, FINDING_LEVELS, Finding, apply_ops, findings_from_json, findings_report,
    format_instruction, generate, ops_from_json, render_pair,
)

N, SIZE = 24, 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("ph") / "a", n=N, seed=0, size=SIZE, progress=False)


def _rows(d: Path) -> list[dict]:
    with open(d / "instructions.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(d)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_and_csv_columns(dataset):
    with open(dataset / "instructions.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == CSV_COLUMNS
    assert CSV_COLUMNS == ("split", "past_dicom_id", "current_dicom_id", "instruction", "subject_id", "aligned",
                           "mask", "sex", "age", "habitus", "findings_past", "findings_current", "ops",
                           "source_report", "target_report")
    rows = _rows(dataset)
    assert len(rows) == N
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert sum(r["split"] == "train" for r in rows) == round(0.8 * N)
    assert len({r["subject_id"] for r in rows}) == N  # one pair per subject: splits are by subject
    for r in rows:
        past, cur, mask = (_png(dataset / "past" / f"{r['past_dicom_id']}.png"),
                           _png(dataset / "current" / f"{r['current_dicom_id']}.png"), _png(dataset / "masks" / r["mask"]))
        assert past.dtype == cur.dtype == mask.dtype == np.uint8
        assert past.shape == cur.shape == mask.shape == (SIZE, SIZE)
        assert set(np.unique(mask)) <= {0, 255}
        assert r["aligned"] == "1" and r["sex"] in ("M", "F") and r["habitus"] in ("slim", "average", "broad")
        assert 20 <= float(r["age"]) <= 90
    meta = json.loads((dataset / "phantom.json").read_text())
    assert (meta["seed"], meta["n"], meta["size"], meta["jitter"]) == (0, N, SIZE, False)
    assert meta["version"]


def test_reports_describe_each_study_in_the_instructions_words(dataset):
    assert findings_report({"Edema": Finding("moderate"), "Effusion": Finding("small", "left")}) == \
        "Moderate edema. Small left pleural effusion."  # RSE_FINDINGS order: Edema before Effusion
    assert findings_report({}) == "No findings."
    for r in _rows(dataset):
        for study in ("past", "current"):
            findings = findings_from_json(r[f"findings_{study}"])
            report = r["source_report" if study == "past" else "target_report"]
            assert report.count(".") == max(1, len(findings))
            for name, f in findings.items():
                assert " ".join(w for w in (f.level, f.side, finding_phrase(name)) if w) in report.lower()


def test_pairs_differ_only_inside_their_masks(dataset):
    changed_pairs = 0
    for r in _rows(dataset):
        past = _png(dataset / "past" / f"{r['past_dicom_id']}.png")
        cur = _png(dataset / "current" / f"{r['current_dicom_id']}.png")
        mask = _png(dataset / "masks" / r["mask"]) > 0
        diff = past != cur
        assert not (diff & ~mask).any(), f"{r['subject_id']}: pixels changed outside the mask"
        assert mask.any()
        changed_pairs += bool(diff.any())
    assert changed_pairs >= N - 1  # every instructed change is visible (even at 64 px, nearly always)


def test_labels_are_the_past_findings_with_the_ops_applied(dataset):
    for r in _rows(dataset):
        past, cur, ops = findings_from_json(r["findings_past"]), findings_from_json(r["findings_current"]), ops_from_json(r["ops"])
        assert apply_ops(past, ops) == cur
        assert 1 <= len(ops) <= 2 and format_instruction(ops) == r["instruction"]
        for name, f in {**past, **cur}.items():
            assert name in RSE_FINDINGS and f.level in FINDING_LEVELS[name] and f.level in LEVELS
        for op in ops:
            assert finding_phrase(op.finding) in r["instruction"]
            if op.side:
                assert f"{op.side} {finding_phrase(op.finding)}" in r["instruction"]


# sha256 of the instruction and ops columns ("instruction\tops" per row, rows joined by newlines) of
# generate(n=24, seed=0, size=64), as the generator wrote them before its ops became the grammar's
# EditOp and its text the grammar's render: a user's phantom dataset keeps its bytes across versions.
INSTRUCTIONS_AND_OPS_SHA256 = "0a821d50485e8abef5c9f042f9735561b26cdf01cb9484d04627a036451b1fd8"


def test_instruction_and_ops_columns_are_the_bytes_earlier_versions_wrote(dataset):
    rows = _rows(dataset)
    text = "\n".join(r["instruction"] + "\t" + r["ops"] for r in rows)
    assert hashlib.sha256(text.encode()).hexdigest() == INSTRUCTIONS_AND_OPS_SHA256
    assert (rows[0]["instruction"], rows[0]["ops"]) == (
        "Add the finding of left atelectasis.",
        '[{"finding": "Atelectasis", "from_level": null, "op": "add", "side": "left", "to_level": "small"}]')


def test_phantom_ops_are_the_grammar_edit_op_and_its_renderer(dataset):
    for r in _rows(dataset):
        ops = ops_from_json(r["ops"])
        assert all(type(o) is EditOp for o in ops)
        assert format_instruction(ops) == render(ops) == r["instruction"]
    import ix2x.data.phantom as phantom

    with pytest.raises(AttributeError, match="EditOp"):
        phantom.Op


def test_instructions_parse_back_to_the_ops(dataset):
    instructions = pytest.importorskip("ix2x.data.instructions")
    for r in _rows(dataset):
        parsed = instructions.parse(r["instruction"])
        ops = ops_from_json(r["ops"])
        assert [(p.op, p.finding, p.side) for p in parsed] == [(o.op, o.finding, o.side) for o in ops]
        for p, o in zip(parsed, ops):
            if o.op == "change":
                assert (p.from_level, p.to_level) == (o.from_level, o.to_level)


def test_same_seed_same_bytes_and_different_seed_differs(dataset, tmp_path):
    again = generate(tmp_path / "b", n=N, seed=0, size=SIZE, progress=False)
    assert _digest(again) == _digest(dataset)
    other = generate(tmp_path / "c", n=N, seed=1, size=SIZE, progress=False)
    assert _digest(other) != _digest(dataset)
    a = _png(dataset / "past" / f"{_rows(dataset)[0]['past_dicom_id']}.png")
    b = _png(other / "past" / f"{_rows(other)[0]['past_dicom_id']}.png")
    assert (a != b).mean() > 0.1


@pytest.mark.parametrize("side, image_half", [("left", "right"), ("right", "left")])
def test_laterality_left_effusion_changes_the_image_right_half(side, image_half):
    pair = render_pair(3, 96, findings_past={}, ops=[EditOp("add", "Effusion", side=side, to_level="moderate")])
    assert pair.instruction == f"Add the finding of {side} pleural effusion."
    diff = pair.past != pair.current
    cols = np.nonzero(diff.any(axis=0))[0]
    assert diff.sum() > 50
    if image_half == "right":
        assert cols.min() >= 48 and (pair.mask[:, :48] == 0).all()
    else:
        assert cols.max() < 48 and (pair.mask[:, 48:] == 0).all()


def test_every_finding_and_level_renders_and_changes_pixels():
    for name in RSE_FINDINGS:
        for level in FINDING_LEVELS[name]:
            side = {"Cardiomegaly": None, "Edema": None}.get(name, "right")
            pair = render_pair(7, 64, findings_past={}, ops=[EditOp("add", name, side=side, to_level=level)])
            diff = pair.past != pair.current
            assert diff.sum() > 5, (name, level)
            assert not (diff & ~pair.mask).any()
    # Levels differ from each other: a level change changes pixels too.
    pair = render_pair(7, 64, findings_past={"Effusion": Finding("small", "left")},
                       ops=[EditOp("change", "Effusion", side="left", from_level="small", to_level="large")])
    assert pair.instruction == "Change the level of left pleural effusion from small to large."
    assert (pair.past != pair.current).sum() > 50
    assert pair.findings_current == {"Effusion": Finding("large", "left")}


def test_render_pair_is_deterministic_and_jitter_is_flagged():
    a, b = render_pair(11, 64), render_pair(11, 64)
    assert (a.past == b.past).all() and (a.current == b.current).all() and (a.mask == b.mask).all()
    assert a.instruction == b.instruction and a.aligned
    j = render_pair(11, 64, jitter=True)
    assert not j.aligned and (j.past == a.past).all()


def test_format_and_apply_ops():
    ops = [EditOp("add", "Effusion", side="left", to_level="small"), EditOp("add", "Edema", to_level="mild")]
    assert format_instruction(ops) == "Add the findings of left pleural effusion and edema."
    ops = [EditOp("remove", "Pneumothorax", side="right", from_level="small"),
           EditOp("change", "Cardiomegaly", from_level="mild", to_level="severe")]
    assert format_instruction(ops) == ("Remove the finding of right pneumothorax. "
                                       "Change the level of cardiomegaly from mild to severe.")
    past = {"Pneumothorax": Finding("small", "right"), "Cardiomegaly": Finding("mild")}
    assert apply_ops(past, ops) == {"Cardiomegaly": Finding("severe")}
    with pytest.raises(ValueError, match="cannot add"):
        apply_ops(past, [EditOp("add", "Cardiomegaly", to_level="mild")])


def test_jitter_dataset_marks_pairs_unaligned(tmp_path):
    d = generate(tmp_path / "j", n=3, seed=0, size=48, jitter=True, progress=False)
    assert {r["aligned"] for r in _rows(d)} == {"0"}
    assert json.loads((d / "phantom.json").read_text())["jitter"] is True


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    from ix2x.cli.main import main

    out = tmp_path / "ph"
    assert main(["phantom", "--out", str(out), "--n", "3", "--size", "48", "--quiet"]) == 0
    assert len(_rows(out)) == 3
    assert main(["phantom", "--out", str(out), "--n", "3", "--size", "48", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["phantom", "--out", str(out), "--n", "4", "--size", "48", "--quiet", "--force"]) == 0
    assert len(_rows(out)) == 4


@pytest.mark.slow
def test_speed_1000_pairs_256px_under_a_minute(tmp_path):
    import time

    start = time.perf_counter()
    generate(tmp_path / "s", n=200, seed=0, size=256, progress=False)
    assert (time.perf_counter() - start) * 5 < 60
