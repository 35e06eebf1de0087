"""Fault containment: whatever one editor does wrong, the other editors' records, the summary and
the report are written, the fault is recorded with its cause and the exit code is non-zero."""

import json
import time

import numpy as np
import pytest
import torch

from ix2x.benchmarks import runner
from ix2x import records, registry
from ix2x.cli.main import main
from ix2x.types import Editor, EditResult

REAL_LOAD = registry.load


class RaisesOnBuild(Editor):
    def __init__(self, config=None):
        raise FileNotFoundError("weights.safetensors is missing")

    def edit(self, requests):
        raise AssertionError("never called")


class RaisesOnPlace(Editor):
    def to(self, device):
        raise RuntimeError("CUDA error: no kernel image is available")

    def edit(self, requests):
        raise AssertionError("never called")


class ExitsOnBuild(Editor):
    def __init__(self, config=None):
        raise SystemExit(3)

    def edit(self, requests):
        raise AssertionError("never called")


class ExitsOnEdit(Editor):
    def edit(self, requests):
        if any(r.sample_id.startswith("s002") for r in requests):
            raise SystemExit("giving up")
        return [EditResult(image=r.image.clone()) for r in requests]


class NumpyGuidance(Editor):
    def edit(self, requests):
        return [EditResult(image=r.image.clone(), guidance_map=np.full(tuple(r.image.shape[-2:]), 0.25, np.float64))
                for r in requests]


class NanGuidance(Editor):
    def edit(self, requests):
        return [EditResult(image=r.image.clone(), guidance_map=torch.full_like(r.image, float("nan")))
                for r in requests]


class BadInfo(Editor):
    def edit(self, requests):
        return [EditResult(image=r.image.clone(), info={"steps": 2, "latents": torch.zeros(2)}) for r in requests]


class BadImage(Editor):
    def edit(self, requests):
        return [EditResult(image=(r.image * 2 + 1) if r.sample_id.startswith("s001") else r.image.double())
                for r in requests]


class Hangs(Editor):
    fill_batches = False

    def edit(self, requests):
        if any(r.sample_id.startswith("s002") for r in requests):
            time.sleep(30)
        return [EditResult(image=r.image.clone()) for r in requests]


PLUGINS = {c.__name__.lower(): c for c in (RaisesOnBuild, RaisesOnPlace, ExitsOnBuild, ExitsOnEdit, NumpyGuidance,
                                             NanGuidance, BadInfo, BadImage, Hangs)}


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setattr(registry, "load", lambda kind, name: PLUGINS[name] if kind == "editor" and name in PLUGINS
                        else REAL_LOAD(kind, name))


def _suite_file(tmp_path, samples, editors, **over):
    from samples_for_tests import write_mimic_dir

    data = write_mimic_dir(tmp_path / "data", samples)
    raw = {"name": "faults", "editors": [{"name": e} for e in editors],
           "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}},
                       {"name": "guidance_localization"}],
           "batch_size": 2, "data": {"source": "dir", "path": str(data), "split": "test"}, **over}
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(raw))
    return path


def _cli_run(tmp_path, samples, editors, capsys, *extra, **over):
    suite = _suite_file(tmp_path, samples, editors, **over)
    rc = main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet", *extra])
    err = capsys.readouterr().err
    dirs = list((tmp_path / "out" / "faults").iterdir()) if (tmp_path / "out" / "faults").is_dir() else []
    return rc, err, dirs


def _by_editor(run_dir):
    out = {}
    for r in records.RunDir.open(run_dir).records():
        out.setdefault(r["editor"], []).append(r)
    return out


STARTS = {"raisesonbuild": ("build", "weights.safetensors is missing"),
          "raisesonplace": ("place", "no kernel image"),
          "exitsonbuild": ("build", "sys.exit(3)")}


def test_an_editor_that_cannot_start_fails_alone(tmp_path, samples, capsys, plugins):
    rc, err, (run_dir,) = _cli_run(tmp_path, samples, ["identity", *STARTS, "oracle"], capsys)
    assert rc == 1 and "3 of 5 editor(s) failed" in err
    recs = _by_editor(run_dir)
    assert [r["status"] for r in recs["identity"] + recs["oracle"]] == ["ok"] * 12
    for bad, (stage, cause) in STARTS.items():
        assert f"editor `{bad}` failed on EVERY sample (6)" in err and cause in err
        assert {(r["status"], r["stage"]) for r in recs[bad]} == {("failed", stage)}
        assert cause in recs[bad][0]["error"]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete"
    assert meta["n_failed"] == {"identity": 0, **{k: 6 for k in STARTS}, "oracle": 0}
    rows = records.RunDir.open(run_dir).summary()
    assert {r["editor"] for r in rows} == {"identity", *STARTS, "oracle"}
    assert (run_dir / "report.html").is_file()


def test_bad_outputs_fail_their_samples_and_the_report_is_written(tmp_path, samples, capsys, plugins):
    editors = ["exitsonedit", "numpyguidance", "nanguidance", "badinfo", "badimage", "identity"]
    rc, err, (run_dir,) = _cli_run(tmp_path, samples, editors, capsys)
    assert rc == 1 and (run_dir / "report.html").is_file() and "could not be written" not in err
    recs = _by_editor(run_dir)
    assert len(recs["identity"]) == 6 and all(r["status"] == "ok" for r in recs["identity"])

    # sys.exit() while editing: that sample's failure, the rest of the editor's samples go on
    failed = [r for r in recs["exitsonedit"] if r["status"] == "failed"]
    assert [r["sample_id"][:4] for r in failed] == ["s002"] and "sys.exit('giving up')" in failed[0]["error"]

    # a NumPy float64 (H, W) guidance map is normalised at the boundary and used
    from ix2x.images import load_image

    ok = recs["numpyguidance"]
    assert all(r["status"] == "ok" for r in ok), ok[0]["error"]
    g = load_image(run_dir / records.sidecar(ok[0]["image"], "guidance"))
    assert g.shape == samples[0].image.shape and abs(float(g.mean()) - 0.25) < 1e-4
    assert "error" not in ok[0]["metrics"]["guidance_localization"]

    # a NaN guidance map is a recorded failure, not a report crash later
    assert {(r["status"], r["stage"]) for r in recs["nanguidance"]} == {("failed", "output")}
    assert "guidance_map` must be finite" in recs["nanguidance"][0]["error"]

    # info JSON cannot hold: the error names the key
    assert all(r["status"] == "failed" for r in recs["badinfo"])
    assert "EditResult.info.latents (Tensor)" in recs["badinfo"][0]["error"]

    # an out-of-range image fails its sample; float64 images are normalised to float32
    by_id = {r["sample_id"][:4]: r for r in recs["badimage"]}
    assert by_id["s001"]["status"] == "failed" and "must lie in [0, 1]" in by_id["s001"]["error"]
    assert all(r["status"] == "ok" for sid, r in by_id.items() if sid != "s001")


def test_a_hanging_batch_times_out_as_a_failure(tmp_path, samples, capsys, plugins):
    t0 = time.perf_counter()
    rc, err, (run_dir,) = _cli_run(tmp_path, samples, ["hangs", "identity"], capsys, "--batch-timeout", "1")
    assert time.perf_counter() - t0 < 25  # the 30 s sleep was cut after 1 s
    recs = _by_editor(run_dir)
    bad = [r for r in recs["hangs"] if r["status"] == "failed"]
    assert {r["sample_id"][:4] for r in bad} == {"s002", "s003"}  # the batch holding s002
    assert {r["stage"] for r in bad} == {"timeout"} and "batch_timeout_s=1" in bad[0]["error"]
    assert json.loads((run_dir / "run.json").read_text())["suite"]["batch_timeout_s"] == 1.0
    assert rc == 1 and len(recs["identity"]) == 6


def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path, samples, capsys, monkeypatch):
    calls = {"n": 0}

    class Interrupted(Editor):
        def edit(self, requests):
            calls["n"] += 1
            if calls["n"] == 2:  # the warm-up (batch 1's edits), then Ctrl-C during batch 2
                raise KeyboardInterrupt
            return [EditResult(image=r.image.clone()) for r in requests]

    monkeypatch.setattr(registry, "load", lambda kind, name: Interrupted if name == "interrupted"
                        else REAL_LOAD(kind, name))
    rc, err, (run_dir,) = _cli_run(tmp_path, samples, ["interrupted"], capsys)
    assert rc == 130 and f"ix2x run --resume {run_dir}" in err
    assert len(records.RunDir.open(run_dir).records()) == 2
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    recs = records.RunDir.open(run_dir).records()
    assert len(recs) == 6 and len({r["sample_id"] for r in recs}) == 6


def test_a_run_that_fails_before_its_first_batch_leaves_no_directory(tmp_path, samples, capsys):
    suite = _suite_file(tmp_path, samples, ["identity"])
    (tmp_path / "data" / "instructions.csv").write_text("not,the,columns\n1,2,3\n")
    rc = main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 2 and "error" in capsys.readouterr().err
    assert not (tmp_path / "out" / "faults").exists()


def test_ctrl_c_before_the_first_batch_leaves_no_directory(tmp_path, samples, capsys, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "prepare_data", interrupt)
    rc, err, dirs = _cli_run(tmp_path, samples, ["identity"], capsys)
    assert rc == 130 and dirs == [] and "nothing was kept" in err


def test_a_metric_that_exits_fails_its_values_only(tmp_path, samples, monkeypatch):
    from ix2x.suite import suite_from_dict
    from ix2x.types import Metric

    class Exits(Metric):
        def compute(self, samples, results):
            if len(samples) > 1 or samples[0].sample_id == "s003":
                raise SystemExit(1)
            return [{"x": 1.0} for _ in samples]

    monkeypatch.setattr(registry, "load", lambda kind, name: Exits if name == "exits" else REAL_LOAD(kind, name))
    suite = suite_from_dict({"name": "m", "editors": [{"name": "identity"}], "metrics": [{"name": "exits"}]})
    outcome = runner.execute(runner.start_run(suite, tmp_path), samples, progress=False)
    values = {r["sample_id"]: r["metrics"]["exits"] for r in records.RunDir.open(outcome.run_dir).records()}
    assert outcome.n_metric_errors == 1 and "sys.exit(1)" in values["s003"]["error"]
    assert values["s000"] == {"x": 1.0}


def test_a_metric_that_cannot_be_built_stops_the_run_before_it_starts(tmp_path, samples, capsys, monkeypatch):
    """Editors that fail to build are contained by the runner, metrics are not (every record needs
    them): preflight skipped both, and such a metric ended `ix2x run` in a traceback (found in review)."""
    from ix2x.types import Metric

    class BadInit(Metric):
        def __init__(self, config=None):
            raise RuntimeError("metric init boom")

        def compute(self, samples, results):
            return [{} for _ in samples]

    monkeypatch.setattr(registry, "load", lambda kind, name: BadInit if name == "badinit" else REAL_LOAD(kind, name))
    path = _suite_file(tmp_path, samples, ["identity"])
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "metrics": [{"name": "badinit"}]}))
    rc = main(["run", "--suite", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc != 0 and "metric init boom" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "faults").exists() or not any((tmp_path / "out" / "faults").iterdir())
