"""Scoring edits made elsewhere (`ix2x score`, the `outputs` editor) and `ix2x export`."""

import csv
import json
import shutil

import pytest
import torch

from ix2x import records
from ix2x.cli.main import main
from ix2x.editors.outputs import LATENCY_NA, EditsIndex, Outputs
from ix2x.errors import DataError
from ix2x.images import save_image
from ix2x.types import EditRequest

SUITE = """
name: outputs_small
data: {{source: dir, path: {data}, split: test}}
editors: [{{name: oracle}}]
metrics: [{{name: out_of_mask_change, args: {{lpips_net: null}}}}, {{name: gt_fidelity, args: {{lpips_net: null}}}},
          {{name: guidance_localization}}]
batch_size: 4
"""


def _only_run(root):
    (suite_dir,) = [p for p in root.iterdir() if p.is_dir()]
    (run_dir,) = list(suite_dir.iterdir())
    return run_dir


def _metrics(run_dir):
    return {r.key: records.dumps(r.metrics) for r in records.RunDir.open(run_dir).sample_records()}


def _oracle_run(root, suite, n):
    assert main(["run", "--suite", suite, "--editors", "oracle", "--quiet", "--out", str(root / "run")]) == 0
    run_dir = _only_run(root / "run")
    assert main(["export", str(run_dir), "--out", str(root / "exported")]) == 0
    assert json.loads((root / "exported" / "export.json").read_text())["editors"]["oracle"]["n_exported"] == n
    return run_dir, root / "exported"


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory):
    from samples_for_tests import tiny_samples, write_mimic_dir

    root = tmp_path_factory.mktemp("outputs")
    data = write_mimic_dir(root / "data", tiny_samples(n=10))
    (root / "small.yaml").write_text(SUITE.format(data=data))
    return str(root / "small.yaml")


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory, small_suite):
    """A run of the oracle on tiny dir data, and its edits exported."""
    return _oracle_run(tmp_path_factory.mktemp("oracle"), small_suite, 10)


def _check_reproduced(run_dir, exported, suite, out, n):
    assert main(["score", "--suite", suite, "--edits", f"oracle={exported / 'oracle'}", "--quiet",
                 "--out", str(out)]) == 0
    scored = _only_run(out)
    before, after = _metrics(run_dir), _metrics(scored)
    assert len(before) == n and after == before  # every value of every metric, byte for byte
    summary = lambda d: [r for r in records.RunDir.open(d).summary() if r["metric"] != "latency"]  # noqa: E731
    assert summary(scored) == summary(run_dir)
    recs = records.RunDir.open(scored).sample_records()
    assert all(r.latency_s is None and r.info["latency"] == LATENCY_NA for r in recs)
    assert not [r for r in records.RunDir.open(scored).summary() if r["metric"] == "latency"]
    meta = records.RunDir.open(scored).meta
    assert meta["outputs"]["oracle"]["n_found"] == n and meta["outputs"]["oracle"]["extra"] == []
    assert meta["suite"]["editors"][0]["args"]["fingerprint"].startswith("sha256:")
    assert (scored / "report.html").is_file()


def test_export_then_score_reproduces_every_metric_value(oracle_run, small_suite, tmp_path):
    _check_reproduced(*oracle_run, small_suite, tmp_path, 10)


@pytest.mark.slow
def test_export_then_score_reproduces_phantom_smoke(tmp_path):
    """The same on phantom_smoke: 16 phantom pairs, every metric of the suite (classifier shift,
    demographic preservation, out-of-mask change, ground-truth fidelity, guidance localisation)."""
    run_dir, exported = _oracle_run(tmp_path, "phantom_smoke", 16)
    _check_reproduced(run_dir, exported, "phantom_smoke", tmp_path / "score", 16)


def test_missing_extra_and_broken_files_are_named(oracle_run, small_suite, tmp_path, capsys):
    _, exported = oracle_run
    folder = tmp_path / "edits"
    shutil.copytree(exported / "oracle", folder)
    edits = sorted(p for p in folder.glob("*.png") if not p.name.endswith(".mask.png"))
    removed = [p.stem for p in edits[:3]]
    for p in edits[:3]:
        p.unlink()
    truncated = edits[3]
    truncated.write_bytes(truncated.read_bytes()[:200])
    (folder / "notes.txt").write_text("not an edit")
    save_image(folder / "unrelated-scan.png", torch.zeros(1, 8, 8))
    code = main(["score", "--suite", small_suite, "--edits", f"mine={folder}", "--quiet",
                 "--out", str(tmp_path / "out")])
    assert code == 1  # failed records make the exit status say so
    run_dir = _only_run(tmp_path / "out")
    failed = {r.sample_id: r.error for r in records.RunDir.open(run_dir).sample_records() if not r.ok}
    assert sorted(failed) == sorted(removed + [truncated.stem])
    for sid in removed:
        assert f"no edit for sample {sid!r}" in failed[sid]
    assert truncated.name in failed[truncated.stem] and "cannot read image" in failed[truncated.stem]
    inv = records.RunDir.open(run_dir).meta["outputs"]["mine"]
    assert inv["n_extra"] == 2 and inv["extra"] == ["notes.txt", "unrelated-scan.png"]
    assert inv["missing"] == sorted(removed) and inv["n_found"] == 7  # the truncated file is found, unreadable
    assert "notes.txt, unrelated-scan.png" in capsys.readouterr().err
    (folder / "notes.txt").write_text("changed")  # any file of the folder: the resume must notice
    assert main(["score", "--resume", str(run_dir), "--quiet"]) == 2
    assert "changed since this run started" in capsys.readouterr().err


def test_resume_refuses_a_changed_folder(oracle_run, tmp_path):
    _, exported = oracle_run
    folder = tmp_path / "edits"
    shutil.copytree(exported / "oracle", folder)
    fingerprint = EditsIndex(folder).fingerprint()
    editor = Outputs(Outputs.Config(folder=str(folder), fingerprint=fingerprint))
    assert editor.problems() == []
    first = sorted(folder.glob("*.png"))[0]
    first.write_bytes(first.read_bytes()[:-1] + b"\0")
    (problem,) = editor.problems()
    assert "changed since this run started" in problem


def _request(sid, size=8):
    return EditRequest(sid, torch.full((1, size, size), 0.5), "Add the finding of edema.", seed=0)


def test_other_size_is_resized_and_recorded(tmp_path):
    """An edit of 12 x 20 resized to the input's 8 x 8 equals PIL's antialiased bilinear resize of
    the same pixels (PIL is the reference torch's antialias mode follows); the mask is resized by
    nearest neighbour and stays binary."""
    import numpy as np
    from PIL import Image

    big = torch.randint(0, 256, (1, 12, 20), generator=torch.Generator().manual_seed(0)).float() / 255
    save_image(tmp_path / "a.png", big, bits=8)
    save_image(tmp_path / "a.mask.png", (big > 0.5).float(), bits=8)
    (result,) = Outputs(Outputs.Config(folder=str(tmp_path))).edit([_request("a")])
    ref = np.array(Image.fromarray(big[0].numpy(), mode="F").resize((8, 8), Image.BILINEAR))
    assert torch.allclose(result.image[0], torch.from_numpy(ref).clamp(0, 1), atol=1e-5)
    assert set(result.edit_mask.unique().tolist()) <= {0.0, 1.0}
    assert result.info["resized"]["edit"] == {"from": [12, 20], "to": [8, 8], "method": "bilinear, antialiased"}
    assert result.info["resized"]["mask"]["method"] == "nearest"


def test_csv_any_naming_and_paths_stay_inside(tmp_path):
    img = torch.rand(1, 8, 8)
    save_image(tmp_path / "sub" / "x1.tif", img, bits=16)
    save_image(tmp_path / "g.png", torch.ones(1, 8, 8) * 0.25)
    (tmp_path / "list.csv").write_text("sample_id,edit,guidance_map\ns/1,sub/x1.tif,g.png\nother,sub/x1.tif,\n")
    editor = Outputs(Outputs.Config(folder=str(tmp_path / "list.csv")))
    (result,) = editor.edit([_request("s/1")])
    assert torch.equal(result.image, torch.round(img * 65535) / 65535)
    assert torch.allclose(result.guidance_map, torch.full((1, 8, 8), 0.25), atol=1 / 65535)
    inv = editor.index.inventory(["s/1"])
    assert inv["mode"] == "csv" and inv["extra"] == ["other"]
    (tmp_path / "bad.csv").write_text("sample_id,edit\na,../outside.png\n")
    with pytest.raises(DataError, match="leaves the CSV's folder"):
        EditsIndex(tmp_path / "bad.csv")
    (tmp_path / "abs.csv").write_text(f"sample_id,edit\na,{tmp_path / 'g.png'}\n")
    with pytest.raises(DataError, match="absolute path"):
        EditsIndex(tmp_path / "abs.csv")


def test_escaped_file_names_and_ambiguity(tmp_path):
    save_image(tmp_path / "p~2fq.png", torch.zeros(1, 8, 8))  # the escaped name of id "p/q"
    save_image(tmp_path / "dup.png", torch.zeros(1, 8, 8))
    (tmp_path / "dup.jpg").write_bytes((tmp_path / "dup.png").read_bytes())
    editor = Outputs(Outputs.Config(folder=str(tmp_path)))
    assert editor.edit([_request("p/q")])[0].info["edit_file"] == "p~2fq.png"
    with pytest.raises(DataError, match="2 edit files"):
        editor.edit([_request("dup")])


def test_score_in_shards_then_merge(oracle_run, small_suite, tmp_path):
    """`ix2x score --shard I/N` then `ix2x merge`: the merged run holds the run's values, and one
    inventory (the missing samples of both shards, the extra file once)."""
    run_dir, exported = oracle_run
    folder = tmp_path / "edits"
    shutil.copytree(exported / "oracle", folder)
    gone = sorted(p for p in folder.glob("*.png") if not p.name.endswith(".mask.png"))[:2]
    for p in gone:
        p.unlink()
    (folder / "notes.txt").write_text("x")
    for i in range(2):
        main(["score", "--suite", small_suite, "--edits", f"oracle={folder}", "--shard", f"{i}/2", "--quiet",
              "--out", str(tmp_path / "sh")])
    shards = sorted((tmp_path / "sh" / "outputs_small").iterdir())
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged"), "--quiet"]) == 1  # 2 failed
    merged = records.RunDir.open(tmp_path / "merged")
    assert {k: v for k, v in _metrics(tmp_path / "merged").items() if k[1] not in [p.stem for p in gone]} == \
        {k: v for k, v in _metrics(run_dir).items() if k[1] not in [p.stem for p in gone]}
    inv = merged.meta["outputs"]["oracle"]
    assert inv["missing"] == [p.stem for p in gone] and inv["extra"] == ["notes.txt"] and inv["n_samples"] == 10


def test_ls_samples_prints_the_ids_files_are_named_by(small_suite, capsys):
    """The ids are `<past_dicom_id>_<current_dicom_id>` of the test rows of instructions.csv."""
    import yaml

    data = yaml.safe_load(open(small_suite))["data"]["path"]
    with open(f"{data}/instructions.csv", newline="") as f:
        expected = [f"{r['past_dicom_id']}_{r['current_dicom_id']}" for r in csv.DictReader(f) if r["split"] == "test"]
    capsys.readouterr()
    assert main(["ls", "samples", "--suite", small_suite]) == 0
    assert capsys.readouterr().out.split() == expected
    assert main(["ls", "samples", "--suite", small_suite, "--json", "--limit", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == expected[:2]


def test_outputs_editor_in_a_suite_file(oracle_run, small_suite, tmp_path, capsys):
    """A suite that names `outputs` editors itself runs with `ix2x run` (and `ix2x score` without
    --edits); the folder's fingerprint is pinned as with --edits."""
    import yaml

    run_dir, exported = oracle_run
    raw = yaml.safe_load(open(small_suite))
    raw["editors"] = [{"name": "outputs", "label": "mine", "args": {"folder": str(exported / "oracle")}}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", "--suite", str(tmp_path / "s.yaml"), "--quiet", "--out", str(tmp_path / "out")]) == 0
    scored = _only_run(tmp_path / "out")
    assert {k[1]: v for k, v in _metrics(scored).items()} == {k[1]: v for k, v in _metrics(run_dir).items()}
    assert records.RunDir.open(scored).meta["suite"]["editors"][0]["args"]["fingerprint"] == \
        EditsIndex(exported / "oracle").fingerprint()
    assert main(["score", "--suite", small_suite]) == 2  # its editor is the oracle, not a folder
    assert "pass `--edits NAME=FOLDER`" in capsys.readouterr().err
