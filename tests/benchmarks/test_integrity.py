"""Run-directory integrity: one writer at a time, data checked on resume, collision-free image
names, names that stay inside --out."""

import dataclasses
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ix2x.benchmarks import rundir, runner
from ix2x import records
from ix2x.cli.main import main
from ix2x.errors import UserError
from ix2x.suite import ComponentSpec, suite_from_dict

SUITE = {"name": "integrity", "editors": [{"name": "identity"}, {"name": "oracle"}],
         "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}], "batch_size": 2}
TESTS = Path(__file__).resolve().parents[1]


def test_a_second_concurrent_resume_is_refused(tmp_path, samples, capsys):
    run_dir = runner.start_run(suite_from_dict(SUITE), tmp_path)
    marker, release = tmp_path / "first-batch-written", tmp_path / "tried"
    child = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(TESTS)!r})
        from pathlib import Path
        from ix2x.benchmarks import runner
        from samples_for_tests import tiny_samples
        def slow(n):
            if not Path({str(marker)!r}).exists():  # hold the lock until the other resume was tried
                Path({str(marker)!r}).touch()
                deadline = time.time() + 120
                while not Path({str(release)!r}).exists() and time.time() < deadline:
                    time.sleep(0.05)
        runner.execute(Path({str(run_dir)!r}), tiny_samples(), progress=False, on_batch=slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline
            time.sleep(0.05)
        rc = main(["run", "--resume", str(run_dir), "--quiet"])
        release.touch()
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and "being written by another ix2x process" in err
    finally:
        release.touch()
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    recs = records.RunDir.open(run_dir).records()
    assert len(recs) == 12 and len({(r["editor"], r["sample_id"]) for r in recs}) == 12
    with rundir.locked(run_dir):  # the lock went with its process
        pass


def _cli_dir_run(tmp_path, samples):
    from samples_for_tests import write_mimic_dir

    data = write_mimic_dir(tmp_path / "data", samples)
    suite = tmp_path / "s.yaml"
    suite.write_text(json.dumps({**SUITE, "data": {"source": "dir", "path": str(data), "split": "test"}}))
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "out" / "integrity").iterdir()
    return data, run_dir


def test_changed_data_refuses_the_resume_or_is_redone_when_allowed(tmp_path, samples, capsys):
    from ix2x.images import save_image

    data, run_dir = _cli_dir_run(tmp_path, samples)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["data_fingerprint"]["tree"]["files"] == 19  # csv + 3 images per sample
    before = {(r["editor"], r["sample_id"]): r for r in records.RunDir.open(run_dir).records()}
    save_image(data / "past" / "s003p.png", 1 - samples[3].image, bits=8)  # the image swapped

    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "data changed" in err and "1 sample(s)" in err and "s003p" in err and "--allow-changed-data" in err

    assert main(["run", "--resume", str(run_dir), "--quiet", "--allow-changed-data"]) == 0
    after = {(r["editor"], r["sample_id"]): r for r in records.RunDir.open(run_dir).records()}
    assert after.keys() == before.keys()
    changed = {k for k in after if after[k]["data_hash"] != before[k]["data_hash"]}
    assert {sid for _, sid in changed} == {"s003p_s003c"} and len(changed) == 2
    rejected = [json.loads(x) for x in (run_dir / records.REJECTED_FILE).read_text().splitlines()]
    assert sorted(r["record"]["editor"] for r in rejected) == ["identity", "oracle"]
    assert json.loads((run_dir / "run.json").read_text())["data_changes"][0]["samples"] == ["s003p_s003c"]

    # An unchanged resume after that is quiet again.
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0


def test_an_edited_instruction_is_a_data_change(tmp_path, samples, capsys):
    data, run_dir = _cli_dir_run(tmp_path, samples)
    csv_path = data / "instructions.csv"
    csv_path.write_text(csv_path.read_text().replace("Add the finding of pleural effusion.",
                                                     "Remove the finding of pleural effusion.", 1))
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 2
    assert "1 sample(s) differ" in capsys.readouterr().err


def test_in_memory_data_is_checked_sample_by_sample(tmp_path, samples):
    run_dir = runner.start_run(suite_from_dict(SUITE), tmp_path)
    runner.execute(run_dir, samples, progress=False)
    swapped = [dataclasses.replace(s, image=samples[0].image) if i == 2 else s for i, s in enumerate(samples)]
    with pytest.raises(rundir.DataChanged, match="'s002', its data changed"):
        runner.execute(run_dir, swapped, progress=False)
    with pytest.raises(rundir.DataChanged, match="'s005', no longer in the data"):
        runner.execute(run_dir, samples[:5], progress=False)


def test_a_changed_report_is_a_data_change(tmp_path, samples):
    """Reports are data an editor may read (``prompt: dataset``): one that changes after it was
    recorded refuses the resume, as a changed image does."""
    with_reports = lambda text: [dataclasses.replace(s, labels={**s.labels, "source_report": "No findings.",  # noqa: E731
                                                              "target_report": text}) for s in samples]
    run_dir = runner.start_run(suite_from_dict(SUITE), tmp_path)
    runner.execute(run_dir, with_reports("Edema."), progress=False)
    assert runner.execute(run_dir, with_reports("Edema."), progress=False).ok
    with pytest.raises(rundir.DataChanged, match="its data changed"):
        runner.execute(run_dir, with_reports("Severe edema."), progress=False)


def test_ids_that_sanitise_alike_get_their_own_images(tmp_path, samples):
    """`s0_000004` and `s0 000004` (and `x~1`, `x_1`) were written to one PNG, and rescore then
    scored one sample with the other's edit."""
    ids = ["s0_000004", "s0 000004", "x~1", "x_1", "a.guidance", "a"]
    renamed = [dataclasses.replace(s, sample_id=i) for s, i in zip(samples, ids)]
    run_dir = runner.start_run(suite_from_dict({**SUITE, "editors": [{"name": "oracle"}]}), tmp_path)
    runner.execute(run_dir, renamed, progress=False)
    recs = records.RunDir.open(run_dir).records()
    assert len({r["image"] for r in recs}) == 6
    from ix2x.images import load_image

    for r, s in zip(recs, renamed):
        assert (load_image(run_dir / r["image"]) - s.target).abs().max() <= 0.5 / 65535 + 1e-7
    names = [records.image_name(i) for i in ids]
    assert len(set(names)) == 6 and records.sidecar(names[5], "guidance").name != names[4]


@pytest.mark.parametrize("ids,what", [(["Ab", "ab"], "map to one image file name"), (["a", "a"], "appears twice")])
def test_ids_that_would_share_a_file_are_refused(tmp_path, samples, ids, what):
    renamed = [dataclasses.replace(s, sample_id=i) for s, i in zip(samples, ids)]
    run_dir = runner.start_run(suite_from_dict(SUITE), tmp_path)
    with pytest.raises(UserError, match=what):
        runner.execute(run_dir, renamed, progress=False)


@pytest.mark.parametrize("over", [{"name": "../escape"}, {"name": "/tmp/abs"},
                                  {"editors": [{"name": "identity", "label": "../../x"}]},
                                  {"metrics": [{"name": "out_of_mask_change", "label": "a/b"}]}])
def test_names_that_leave_the_output_folder_are_refused(tmp_path, over):
    out = tmp_path / "a" / "out"
    out.mkdir(parents=True)
    with pytest.raises(UserError, match="must be a name of letters"):
        runner.start_run(suite_from_dict({**SUITE, **over}), out)
    assert list(tmp_path.rglob("*")) == [tmp_path / "a", out]


def test_a_record_pointing_outside_its_run_is_refused(tmp_path, samples):
    run_dir = runner.start_run(suite_from_dict(SUITE), tmp_path / "out")
    runner.execute(run_dir, samples, progress=False)
    path = run_dir / records.SAMPLES_FILE
    recs = records.read_records(path)
    recs[0]["image"] = "../../../secret.png"
    path.write_text("".join(records.dumps(r) + "\n" for r in recs))
    with pytest.raises(UserError, match="must stay inside"):
        runner.rescore(run_dir, [ComponentSpec("out_of_mask_change", args={"lpips_net": None})], samples,
                       progress=False)


def test_files_touched_but_not_changed_resume_quietly(tmp_path, samples):
    import os

    data, run_dir = _cli_dir_run(tmp_path, samples)
    before = (run_dir / records.SAMPLES_FILE).read_bytes()
    old = json.loads((run_dir / "run.json").read_text())["data_fingerprint"]["tree"]["digest"]
    image = data / "past" / "s002p.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # copied, say
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0  # every sample hashed: all equal
    assert (run_dir / records.SAMPLES_FILE).read_bytes() == before and not (run_dir / records.REJECTED_FILE).exists()
    assert json.loads((run_dir / "run.json").read_text())["data_fingerprint"]["tree"]["digest"] != old
