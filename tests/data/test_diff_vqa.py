"""Dataset construction from MIMIC-Diff-VQA rows written here in the release's schema."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ix2x.data.diff_vqa import build_dataset, convert_answer, question_area
from ix2x.data.instructions import parse
from ix2x.data.mimic import MimicEditDataset, validate_dataset
from ix2x.errors import DataError

WHOLE = "what has changed compared to the reference image?"


def test_convert_answer_templates():
    assert convert_answer("the level of edema has changed from mild to moderate. ") == (
        "Change the level of edema from mild to moderate.", ["change_level"], [])
    assert convert_answer("the main image has an additional finding of pleural effusion than the "
                          "reference image. ")[0] == "Add the finding of pleural effusion."
    assert convert_answer("the main image has additional findings of edema, atelectasis, and "
                          "cardiomegaly than the reference image. ")[0] == (
        "Add the findings of edema, atelectasis, and cardiomegaly.")
    assert convert_answer("the main image is missing the findings of edema and pneumonia than the "
                          "reference image. ")[0] == "Remove the findings of edema and pneumonia."
    text, fired, unmatched = convert_answer(
        "the main image is missing the finding of pneumothorax than the reference image. "
        "the level of pleural effusion has changed from moderate to large to small. ")
    assert text == ("Remove the finding of pneumothorax. "
                    "Change the level of pleural effusion from moderate to large to small.")
    assert fired == ["remove_one", "change_level"] and unmatched == []
    assert parse(text)[1].from_level == "moderate to large"
    assert convert_answer("nothing has changed.") == (None, ["nothing_changed"], [])
    assert convert_answer("the heart looks bigger. ") == (None, [], ["the heart looks bigger"])


def test_area_questions_keep_the_location():
    assert question_area("what has changed in the left lung area?") == "left lung"
    assert question_area(WHOLE) is None
    text, _, _ = convert_answer("the main image has additional findings of pleural effusion and "
                                "atelectasis than the reference image. ", area="left lung")
    assert text == "Add the findings of pleural effusion in the left lung and atelectasis in the left lung."
    ops = parse(text)
    assert [(o.finding, o.side, o.location) for o in ops] == [
        ("Effusion", "left", "lung"), ("Atelectasis", "left", "lung")]


def _images(root, studies):
    """Write MIMIC-CXR-JPG style files and mimic_all.csv for (subject, study, dicom) triples."""
    rows = []
    for subject, study, dicom, write in studies:
        rows.append(dict(subject_id=subject, study_id=study, dicom_id=dicom, view="postero-anterior"))
        if write:
            folder = root / "cxr" / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((32, 32), 7, np.uint8)).save(folder / f"{dicom}.jpg")
    (root / "dvqa").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "dvqa" / "mimic_all.csv", index=False)


def _q(subject, study, ref, answer, question=WHOLE, qtype="difference", split="train"):
    return dict(study_id=study, subject_id=subject, ref_id=ref, question=question, answer=answer,
                question_type=qtype, split=split)


ADD = "the main image has an additional finding of edema than the reference image. "


@pytest.fixture
def release(tmp_path):
    _images(tmp_path, [("10000001", "501", "d501", True), ("10000001", "502", "d502", True),
                       ("10000002", "601", "d601", True), ("10000002", "602", "d602", True),
                       ("10000003", "701", "d701", True), ("10000003", "702", "d702", False),
                       ("10000004", "801", "d801", True), ("10000004", "802", "d802", True)])
    rows = [
        _q("10000001", "502", "501", ADD),
        _q("10000001", "502", "501", "the main image is missing the finding of pneumothorax than the "
           "reference image. ", question="what has changed in the right lung area?"),
        _q("10000001", "502", "501", "yes", qtype="presence"),
        _q("10000002", "602", "601", "nothing has changed.", split="test"),
        _q("10000002", "602", "601", "the level of edema has changed from mild to moderate. ", split="test"),
        _q("10000002", "602", "601", "the level of edema has changed from mild to moderate. ", split="test"),
        _q("10000003", "702", "701", ADD, split="test"),                     # current image missing
        _q("10000004", "802", "999", ADD, split="val"),                      # ref study unknown
        _q("10000004", "802", "801", "the heart looks bigger. " + ADD, split="val"),  # unmatched
        _q("10000004", "802", "801", "the level of edema has changed from mild to moderate to large. ",
           split="val"),                                                       # ambiguous levels
        _q("10000004", "802", "801", "the main image has additional findings of edema, and cardiomegaly "
           "than the reference image. ", question="what has changed in the cardiac area?", split="val"),
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "dvqa" / "mimic_pair_questions.csv", index=False)
    return tmp_path


def test_build_counts_every_rule_and_drop(release):
    report = build_dataset(release / "dvqa", release / "cxr", release / "out")
    assert report.n_rows == 11 and report.n_difference == 10 and report.n_written == 4
    assert dict(report.rules) == {"add_one": 4, "add_many": 1, "remove_one": 1, "change_level": 3,
                                  "nothing_changed": 1}
    assert dict(report.questions) == {"whole_image": 8, "area": 2}
    assert dict(report.unmatched) == {"the heart looks bigger": 1}
    assert dict(report.dropped) == {"no_change": 1, "duplicate": 1, "missing_image": 1,
                                    "study_not_in_mimic_all": 1, "unmatched_sentence": 1,
                                    "grammar_rejects_instruction": 1}
    assert "ambiguous levels" in report.unparsable[0]
    assert dict(report.splits) == {"train": 2, "test": 1, "val": 1}
    assert report.images_linked == 6
    text = report.format()
    assert "unmatched sentences: 1 (1 distinct)" in text and "1 x 'the heart looks bigger'" in text

    frame = pd.read_csv(release / "out" / "instructions.csv", dtype=str)
    assert frame[["past_dicom_id", "current_dicom_id", "instruction"]].values.tolist() == [
        ["d501", "d502", "Add the finding of edema."],
        ["d501", "d502", "Remove the finding of pneumothorax in the right lung."],
        ["d601", "d602", "Change the level of edema from mild to moderate."],
        ["d801", "d802", "Add the findings of edema in the cardiac, and cardiomegaly in the cardiac."],
    ]
    assert (release / "out" / "past" / "d501.jpg").is_symlink()
    # The images are symlinks into the MIMIC-CXR-JPG tree, outside the dataset root: refused unless
    # that tree is declared as a place links may lead.
    refused = validate_dataset(release / "out")
    assert not refused.ok and refused.counts["outside_root"] == 8  # 4 rows x 2 images
    assert validate_dataset(release / "out", link_roots=[release / "cxr"]).ok
    sample = MimicEditDataset(release / "out", split="test", link_roots=[release / "cxr"])[0]
    assert sample.sample_id == "d601_d602" and sample.patient_id == "10000002"
    assert sample.labels == {"ref_id": 601, "study_id": 602}


def test_patient_split_keeps_each_patient_in_one_split(tmp_path):
    studies, rows = [], []
    for p in range(40):
        subject = f"1{p:07d}"
        studies += [(subject, f"{p}1", f"a{p}", True), (subject, f"{p}2", f"b{p}", True)]
        # the release puts the same patient's two questions in different splits on purpose
        rows += [_q(subject, f"{p}2", f"{p}1", ADD, split="train" if p % 2 else "test"),
                 _q(subject, f"{p}2", f"{p}1", "the main image is missing the finding of edema than the "
                    "reference image. ", split="train")]
    _images(tmp_path, studies)
    pd.DataFrame(rows).to_csv(tmp_path / "dvqa" / "mimic_pair_questions.csv", index=False)
    report = build_dataset(tmp_path / "dvqa", tmp_path / "cxr", tmp_path / "out", patient_split=True,
                           seed=3, link="copy")
    frame = pd.read_csv(tmp_path / "out" / "instructions.csv", dtype=str)
    assert len(frame) == 80 and report.split_source == "patient-level"
    assert frame.groupby("subject_id")["split"].nunique().max() == 1
    # release proportions of rows: 60 train, 20 test -> 30 and 10 patients
    assert dict(report.splits) == {"train": 60, "test": 20}
    assert not (tmp_path / "out" / "past" / "a0.jpg").is_symlink()
    build_dataset(tmp_path / "dvqa", tmp_path / "cxr", tmp_path / "out2", patient_split=True, seed=3)
    assert pd.read_csv(tmp_path / "out2" / "instructions.csv", dtype=str)["split"].tolist() == frame["split"].tolist()


def test_missing_inputs_are_clear_errors(tmp_path):
    (tmp_path / "cxr").mkdir()
    with pytest.raises(DataError, match="mimic_pair_questions.csv.*does not exist"):
        build_dataset(tmp_path, tmp_path / "cxr", tmp_path / "out")
    pd.DataFrame([dict(study_id=1)]).to_csv(tmp_path / "mimic_pair_questions.csv", index=False)
    with pytest.raises(DataError, match="lacks column"):
        build_dataset(tmp_path, tmp_path / "cxr", tmp_path / "out")


def test_cli_dataset_build(release, capsys):
    from ix2x.cli.main import main

    assert main(["dataset", "build", "--diff-vqa", str(release / "dvqa"), "--mimic-cxr",
                 str(release / "cxr"), "--out", str(release / "cli"), "--copy"]) == 0
    out = capsys.readouterr().out
    assert "instructions written: 4" in out and "change_level: 3" in out and "no_change: 1" in out
    assert not (release / "cli" / "past" / "d501.jpg").is_symlink()


def test_the_printed_validate_command_accepts_the_symlinked_build(release, capsys):
    """Regression: the build symlinked images into MIMIC-CXR and printed `ix2x validate --data OUT`,
    which refused every image as outside the dataset root. The printed command names the link root."""
    import json
    import shlex

    from ix2x.cli.main import main

    assert main(["dataset", "build", "--diff-vqa", str(release / "dvqa"), "--mimic-cxr",
                 str(release / "cxr"), "--out", str(release / "linked")]) == 0
    out = capsys.readouterr().out
    command = out.rsplit("check it with `", 1)[1].split("`", 1)[0]
    assert "--link-root" in command
    main(shlex.split(command)[1:] + ["--json"])
    dataset = json.loads(capsys.readouterr().out)["dataset"]
    assert not any("outside" in str(v) for v in dataset["examples"].values()), dataset["examples"]
    assert "outside_root" not in dataset["counts"] and dataset["rows"] == 4
    # Without the link root the same folder is refused: the printed option is what makes it pass.
    main(["validate", "--data", str(release / "linked"), "--json"])
    refused = json.loads(capsys.readouterr().out)["dataset"]
    assert any("outside" in str(v) for v in refused["examples"].values())
