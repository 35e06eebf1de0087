"""``ix2x review export``: what the packet holds, what it must not, and that it is reproducible."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import EDITORS
from ix2x.benchmarks.review_packet import export_packet, facets, key_path, sample_cases
from ix2x.errors import UserError
from ix2x.records import RunDir


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _embedded(packet):
    html = (packet / "index.html").read_text()
    start = html.index('<script id="packet-data" type="application/json">') + len(
        '<script id="packet-data" type="application/json">')
    return json.loads(html[start:html.index("</script>", start)])


def test_no_editor_name_or_run_id_in_any_file_of_the_packet(packet, phantom_run):
    assert not key_path(packet).is_relative_to(packet) and key_path(packet).is_file()
    secrets = [*EDITORS, phantom_run.name, phantom_run.name.split("-")[-1], str(phantom_run.parent)]
    files = _tree(packet)
    assert len(files) == 1 + 2 * len(RunDir.open(phantom_run).sample_records())
    for name, blob in files.items():
        for s in secrets:
            assert s.lower().encode() not in blob.lower(), f"{s!r} found in {name}"
            assert s.lower() not in name.lower()


def test_the_key_unblinds_every_case_and_the_images_are_the_runs(packet, phantom_run):
    key = json.loads(key_path(packet).read_text())
    data = _embedded(packet)
    assert key["packet_hash"] == data["hash"]
    run = RunDir.open(phantom_run)
    recs = {(r.editor, r.sample_id): r for r in run.sample_records()}
    assert {(c["editor"], c["sample_id"]) for c in key["cases"].values()} == set(recs)  # n = every edit
    for case in data["cases"]:
        truth = key["cases"][case["id"]]
        rec = recs[(truth["editor"], truth["sample_id"])]
        assert case["instruction"] == rec.instruction
        edit16 = np.asarray(Image.open(phantom_run / rec.image), dtype=np.float64) / 65535
        shown = np.asarray(Image.open(packet / case["edit"]))
        assert shown.dtype == np.uint8 and shown.shape == edit16.shape  # full resolution
        assert np.array_equal(shown, np.round(edit16 * 255).astype(np.uint8))
        if truth["editor"] == "identity":  # the floor's edit is its input: the input image is the same
            assert np.array_equal(np.asarray(Image.open(packet / case["input"])), shown)


def test_each_reader_gets_a_different_order_of_the_same_cases(packet):
    data = _embedded(packet)
    ids = sorted(c["id"] for c in data["cases"])
    orders = list(data["orders"].values())
    assert len(orders) == 3 and all(sorted(o) == ids for o in orders)
    assert len({tuple(o) for o in orders}) == 3


def test_same_seed_same_bytes_other_seed_other_packet(phantom_run, tmp_path):
    for name in ("a", "b"):
        export_packet([phantom_run], tmp_path / name, n=10, raters=2, seed=3, progress=False)
    export_packet([phantom_run], tmp_path / "c", n=10, raters=2, seed=4, progress=False)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert key_path(tmp_path / "a").read_bytes() == key_path(tmp_path / "b").read_bytes()
    assert _tree(tmp_path / "a") != _tree(tmp_path / "c")


def test_cases_are_shared_evenly_by_editor_and_spread_over_operations_and_findings(phantom_run):
    run = RunDir.open(phantom_run)
    recs = [r for r in run.sample_records() if r.editor == "oracle"]
    available = {facets(r) for r in recs}
    cases = sample_cases([run], 12, seed=1)
    per_editor = {e: [c for c in cases if c.editor == e] for e in EDITORS}
    assert [len(v) for v in per_editor.values()] == [6, 6]
    # six cases from an editor cover min(6, strata available) different (operation, finding) strata
    assert len({(c.op, c.finding) for c in per_editor["oracle"]}) == min(6, len(available))
    real = sample_cases([run], 12, seed=1, mode="real-or-edited")
    assert sum(c.kind == "real" for c in real) == 6 and sum(c.kind == "edit" for c in real) == 6
    assert {c.editor for c in sample_cases([run], 12, seed=1, editors=["oracle"])} == {"oracle"}
    with pytest.raises(UserError, match="`--editors` must name editors of the runs .identity, oracle., got nope"):
        sample_cases([run], 12, seed=1, editors=["nope"])


def test_a_patient_data_run_is_refused_unless_named(phantom_run, tmp_path):
    mimic = tmp_path / "mimic" / phantom_run.name
    shutil.copytree(phantom_run, mimic)
    meta = json.loads((mimic / "run.json").read_text())
    meta["suite"]["report_images"] = False
    (mimic / "run.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="real patient images.*--allow-patient-images"):
        export_packet([mimic], tmp_path / "p", n=4, progress=False)
    assert not (tmp_path / "p").exists()
    with pytest.raises(UserError, match="real patient images"):
        export_packet([mimic], tmp_path / "p", n=4, allow_patient_images=["some-other-run"], progress=False)
    export_packet([mimic], tmp_path / "p", n=4, allow_patient_images=[mimic.name], progress=False)
    assert len(list((tmp_path / "p" / "images").iterdir())) == 8


def test_real_or_edited_packet_shows_one_image_without_instruction(phantom_run, tmp_path):
    export_packet([phantom_run], tmp_path / "t", n=8, mode="real-or-edited", seed=0, progress=False)
    data = _embedded(tmp_path / "t")
    key = json.loads(key_path(tmp_path / "t").read_text())
    assert data["mode"] == "real-or-edited" and all(set(c) == {"id", "image"} for c in data["cases"])
    assert sorted(v["kind"] for v in key["cases"].values()) == ["edit"] * 4 + ["real"] * 4


def test_a_missing_edit_image_is_one_clear_error(phantom_run, tmp_path):
    run = tmp_path / "runs" / phantom_run.name
    shutil.copytree(phantom_run, run)
    shutil.rmtree(run / "images" / "oracle")
    with pytest.raises(UserError, match="is missing from its run directory"):
        export_packet([run], tmp_path / "p", n=4, progress=False)


def test_cli_export_refuses_a_used_folder(phantom_run, tmp_path, capsys):
    from ix2x.cli.main import main

    assert main(["review", "export", str(phantom_run), "--out", str(tmp_path / "s"), "--n", "4", "--quiet"]) == 0
    assert "key (keep from the readers)" in capsys.readouterr().out
    assert main(["review", "export", str(phantom_run), "--out", str(tmp_path / "s"), "--n", "4", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
