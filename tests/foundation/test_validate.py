"""`ix2x validate` checks data and metric requirements without running anything."""

import csv

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
    assert capsys.readouterr().out.strip().endswith("ok")


def test_metric_needing_masks_on_data_without_masks(tmp_path, capsys):
    data = write_mimic_dir(tmp_path / "d", tiny_samples(3))
    _drop_column(data / "instructions.csv", "mask")
    assert main(["validate", "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert "metric `out_of_mask_change` requires region" in out
    # the default suite's CMIG needs attribute labels, which this dataset does not have either
    assert "metric `cmig` requires labels" in out


def test_missing_image_is_reported_with_its_row(tmp_path, capsys):
    data = write_mimic_dir(tmp_path / "d", tiny_samples(3))
    (data / "past" / "s000p.png").unlink()
    assert main(["validate", "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert "s000p" in out and "requirements not checked" in out
