"""`ix2x validate` checks data and metric requirements without running anything."""

import csv
import json

from ix2x.cli.main import main
from samples_for_tests import tiny_samples, write_mimic_dir


def _drop_column(path, column):
    rows = list(csv.DictReader(open(path)))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != column])
        w.writeheader()
        w.writerows([{k: v for k, v in r.items() if k != column} for r in rows])


def test_valid_dataset_passes(tmp_path, capsys):
    data = write_mimic_dir(tmp_path / "d", tiny_samples(3, size=32))  # 32 px: validate's minimum
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\neditors: [{name: identity}]\nmetrics: [{name: out_of_mask_change}]\n")
    assert main(["validate", "--suite", str(suite), "--data", str(data)]) == 0
    assert capsys.readouterr().out.strip().endswith("ok: `ix2x run` with these options would start")


def test_metric_needing_masks_on_data_without_masks(tmp_path, capsys):
    data = write_mimic_dir(tmp_path / "d", tiny_samples(3, size=32))  # 32 px: validate's minimum
    _drop_column(data / "instructions.csv", "mask")
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\neditors: [{name: identity}]\nmetrics: [{name: out_of_mask_change}, {name: cmig}]\n")
    assert main(["validate", "--suite", str(suite), "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert "metric `out_of_mask_change` requires region" in out
    # CMIG needs attribute labels, which this dataset does not have either
    assert "metric `cmig` requires labels" in out


def test_data_without_suite_is_checked_with_the_suites_that_read_folders(tmp_path, capsys):
    """Before, `validate --data DIR` checked the phantom suite's needs (true masks) on a real folder."""
    data = write_mimic_dir(tmp_path / "d", tiny_samples(3, size=32))  # 32 px: validate's minimum
    _drop_column(data / "instructions.csv", "mask")  # a real folder has no true change masks
    rc = main(["validate", "--data", str(data), "--editors", "identity", "--metrics", "out_of_mask_change",
               "--device", "cpu"])
    out = capsys.readouterr().out
    assert "suites that read a dataset folder: mimic; checking with `mimic`" in out
    # mimic's region is the instruction's pseudo-mask: out_of_mask_change has what it needs
    assert "requires region" not in out and rc == 0, out


def test_validate_takes_editors_and_metrics_and_json(tmp_path, capsys):
    data = write_mimic_dir(tmp_path / "d", tiny_samples(3, size=32))  # 32 px: validate's minimum
    assert main(["validate", "--data", str(data), "--editors", "instructx2x", "--metrics", "lpips",
                 "--editor-arg", f"instructx2x.model={tmp_path / 'nope'}", "--device", "cpu", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["editors"] == ["instructx2x"] and report["metrics"] == ["lpips"]
    assert report["fitting_suites"] == ["mimic"] and report["ok"] is False
    assert [p.split(":")[0] for p in report["problems"]] == ["editor `instructx2x`", "metric `lpips`"]
    assert f"model folder {tmp_path / 'nope'} does not exist" in report["problems"][0]


def test_missing_image_is_reported_with_its_row(tmp_path, capsys):
    data = write_mimic_dir(tmp_path / "d", tiny_samples(3, size=32))  # 32 px: validate's minimum
    (data / "past" / "s000p.png").unlink()
    assert main(["validate", "--data", str(data), "--editors", "identity", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "s000p" in out and "requirements not checked" in out


def test_validate_and_run_agree_about_an_editor_whose_constructor_fails(tmp_path, capsys, monkeypatch):
    """Regression: validate called such a plugin a problem (exit 1, "`ix2x run` would not start"),
    while run started, recorded its samples as failed and ran the others."""
    import sys
    import types
    from importlib.metadata import EntryPoint

    from ix2x import registry
    from ix2x.types import Editor

    class Unbuildable(Editor):
        def __init__(self, config=None):
            raise RuntimeError("needs a licence server")

        def edit(self, requests):
            raise AssertionError("never built")

    module = types.ModuleType("ix2x_test_unbuildable")
    module.Unbuildable = Unbuildable
    monkeypatch.setitem(sys.modules, "ix2x_test_unbuildable", module)
    original = registry.entry_points
    extra = [EntryPoint("unbuildable_t", "ix2x_test_unbuildable:Unbuildable", "ix2x.editors")]
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: list(original(group=group)) + (extra if group == "ix2x.editors" else []))
    data = write_mimic_dir(tmp_path / "d", tiny_samples(3, size=32))
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\neditors: [{name: identity}, {name: unbuildable_t}]\n"
                     "metrics: [{name: out_of_mask_change}]\n")
    assert main(["validate", "--suite", str(suite), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["problems"] == []
    (warning,) = report["warnings"]
    assert "editor `unbuildable_t` cannot be built" in warning and "needs a licence server" in warning
    # And run does what validate said: it starts, the broken editor's samples fail, identity's do not.
    main(["run", "--suite", str(suite), "--data", str(data), "--out", str(tmp_path / "results"), "--quiet"])
    capsys.readouterr()
    (samples,) = list((tmp_path / "results").rglob("samples.jsonl"))
    recs = [json.loads(line) for line in samples.read_text().splitlines()]
    assert {r["editor"]: r["status"] for r in recs} == {"identity": "ok", "unbuildable_t": "failed"}


def test_a_folder_written_by_ix2x_phantom_is_checked_with_the_phantom_suite(tmp_path, capsys):
    """Regression: `validate --data DIR` on an `ix2x phantom` folder checked it against `mimic` and
    listed its real-data weights (9 missing-weight problems) although the phantom suite fits it."""
    assert main(["phantom", "--out", str(tmp_path / "ph"), "--n", "4", "--size", "32", "--quiet"]) == 0
    capsys.readouterr()
    rc = main(["validate", "--data", str(tmp_path / "ph"), "--device", "cpu", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["suite"] == "phantom" and report["dataset"]["ok"], report
    assert not any("torchxrayvision" in p or "xrv" in p for p in report["problems"]), report["problems"]
    assert rc == (0 if report["ok"] else 1)
