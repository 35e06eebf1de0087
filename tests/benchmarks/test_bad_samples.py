"""A sample whose files cannot be loaded or whose instruction cannot be parsed costs that sample
only: `validate` reports it with its CSV line, `run` records it as failed (naming the file and the
line) and goes on, and resume finishes."""

import csv
import json

import torch

from ix2x import records
from ix2x.cli.main import main
from ix2x.images import save_image


def _dataset(tmp_path):
    from samples_for_tests import tiny_samples, write_mimic_dir

    root = write_mimic_dir(tmp_path / "data", tiny_samples(26))
    # Row 6 (CSV line 7): a mask of another size than its image.
    save_image(root / "masks" / "s005.png", torch.zeros(1, 8, 8), bits=8)
    # Row 12 (CSV line 13): an instruction the grammar refuses.
    path = root / "instructions.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    rows[11]["instruction"] = "Make the lungs look more interesting."
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    suite = {"name": "bad", "editors": [{"name": "identity"}],
             "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}], "batch_size": 4,
             "data": {"source": "dir", "path": str(root), "split": "test", "region": "pseudo_mask"}}
    (tmp_path / "suite.yaml").write_text(json.dumps(suite))
    return tmp_path / "suite.yaml"


def test_validate_reports_what_run_would_refuse(tmp_path, capsys):
    suite = _dataset(tmp_path)
    rc = main(["validate", "--suite", str(suite)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc != 0
    assert "mask shape: 1" in text and "line 7: mask" in text and "(1, 8, 8) but the past image has (1, 16, 16)" in text
    assert "unparsable instruction: 1" in text and "line 13:" in text


def test_bad_samples_fail_alone_and_resume_finishes(tmp_path, capsys):
    suite = _dataset(tmp_path)
    rc = main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"])
    capsys.readouterr()
    (run_dir,) = (tmp_path / "out" / "bad").iterdir()
    recs = records.RunDir.open(run_dir).records()
    assert rc == 1 and len(recs) == 26
    assert sum(r["status"] == "ok" for r in recs) == 24
    failed = {r["sample_id"][:4]: r for r in recs if r["status"] == "failed"}
    assert set(failed) == {"s005", "s011"} and {r["stage"] for r in failed.values()} == {"load"}
    assert "s005.png" in failed["s005"]["error"] and "line 7 " in failed["s005"]["error"]
    assert "cannot parse instruction" in failed["s011"]["error"] and "line 13 " in failed["s011"]["error"]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"

    rc = main(["run", "--resume", str(run_dir), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "2 record(s) of samples that could not be loaded are tried again" in err
    again = records.RunDir.open(run_dir).records()
    assert len(again) == 26 and sum(r["status"] == "ok" for r in again) == 24
    assert [r["sample_id"] for r in again] == [r["sample_id"] for r in recs]  # dataset order kept
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
