"""Records that survive damage: a damaged line anywhere, a damaged run.json, a full disk."""

import errno
import json

import pytest

from ix2x.benchmarks import rundir, runner
from ix2x import records
from ix2x.cli.main import main
from ix2x.suite import suite_from_dict

# In process: the faults below are injected by patching this process (a child would not see them).
SUITE = {"name": "damage", "editors": [{"name": "identity"}, {"name": "oracle"}], "isolation": "none",
         "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}], "batch_size": 2}


def _finished(tmp_path, samples, name="run"):
    run_dir = runner.start_run(suite_from_dict(SUITE), tmp_path / name)
    runner.execute(run_dir, samples, progress=False)
    return run_dir


def _comparable(run_dir):
    return records.without_timings(records.RunDir.open(run_dir).records())


def test_a_damaged_line_in_the_middle_is_reported_then_set_aside_and_redone(tmp_path, samples, capsys):
    run_dir = _finished(tmp_path, samples)
    clean = _comparable(run_dir)
    path = run_dir / records.SAMPLES_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    lines[4] = b'{"editor": "identity", "sample_id": "s004", "sta\x00\xff garbage\n'
    lines[7] = b'{"editor": "oracle", "sample_id": "s001", "status": "maybe"}\n'  # JSON, not a record
    path.write_bytes(b"".join(lines))

    with pytest.raises(records.RecordError, match=r"2 damaged line\(s\) \(line 5, 8: .*--resume"):
        records.RunDir.open(run_dir).records()
    assert main(["compare", str(run_dir), str(run_dir)]) == 2  # one line, no traceback
    assert "line 5, 8" in capsys.readouterr().err

    runner.execute(run_dir, samples, progress=False)
    assert _comparable(run_dir) == clean  # both samples redone, in place of nothing
    rejected = [json.loads(x) for x in (run_dir / records.REJECTED_FILE).read_text().splitlines()]
    assert [(r["line"], r["file"]) for r in rejected] == [(5, "samples.jsonl"), (8, "samples.jsonl")]
    assert "garbage" in rejected[0]["raw"] and "status" in rejected[1]["reason"]


def test_a_damaged_run_json_is_a_one_line_error(tmp_path, samples, capsys):
    run_dir = _finished(tmp_path, samples)
    (run_dir / records.RUN_FILE).write_text('{"schema_version": 2, "suite": {"name": ')
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run.json is damaged" in err and "Traceback" not in err


def _disk_full_after(monkeypatch, module, name, n_ok):
    real = getattr(module, name)
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(errno.ENOSPC, "No space left on device", str(a[0]) if a else None)
        return real(*a, **k)

    monkeypatch.setattr(module, name, flaky)


@pytest.mark.parametrize("where", ["image", "records"])
def test_a_full_disk_is_one_line_and_resume_finishes(tmp_path, samples, capsys, monkeypatch, where):
    from samples_for_tests import write_mimic_dir

    data = write_mimic_dir(tmp_path / "data", samples)
    suite = tmp_path / "s.yaml"
    suite.write_text(json.dumps({**SUITE, "data": {"source": "dir", "path": str(data), "split": "test"},
                                 "report_images": False}))
    with monkeypatch.context() as m:
        if where == "image":  # the 4th edit PNG fails to write
            import ix2x.images

            _disk_full_after(m, ix2x.images, "save_image", 3)
        else:  # the 3rd batch of records fails to write
            _disk_full_after(m, records, "_os_write", 2)
        rc = main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "No space left" in err and "--resume" in err
    (run_dir,) = (tmp_path / "out" / "damage").iterdir()
    recs = records.RunDir.open(run_dir).records()
    assert len(recs) == (2 if where == "image" else 4)  # nothing of the failed batch counts as done
    assert all((run_dir / r["image"]).is_file() for r in recs)
    assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name]  # no half-written file left

    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    clean = runner.start_run(suite_from_dict(SUITE), tmp_path / "clean")
    from ix2x.data.mimic import MimicEditDataset

    runner.execute(clean, MimicEditDataset(data), progress=False)
    assert [{k: v for k, v in r.items() if k != "image"} for r in _comparable(run_dir)] == \
        [{k: v for k, v in r.items() if k != "image"} for r in _comparable(clean)]


def test_a_write_that_fails_is_cut_back_off_the_records_file(tmp_path, monkeypatch):
    path = tmp_path / "samples.jsonl"
    rec = records.SampleRecord(editor="e", sample_id="a", status="ok")
    with records.RecordWriter(path) as w:
        w.write_batch([rec])
        before = path.read_bytes()
        real = records._os_write

        def half(fd, data):  # writes part of the batch, then the disk is full
            real(fd, bytes(data[:10]))
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(records, "_os_write", half)
        with pytest.raises(OSError):
            w.write_batch([rec, rec])
    assert path.read_bytes() == before


def test_save_png_leaves_no_file_when_the_disk_fills(tmp_path, monkeypatch):
    import torch

    import ix2x.images

    def full(path, image, bits=16):
        open(path, "wb").write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ix2x.images, "save_image", full)
    with pytest.raises(OSError):
        rundir.save_png(tmp_path / "a" / "x.png", torch.zeros(1, 4, 4))
    assert list((tmp_path / "a").iterdir()) == []


def test_a_full_disk_when_starting_leaves_no_run_directory(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records, "write_json_atomic", full)
    with pytest.raises(runner.DiskFull, match="No space left"):
        runner.start_run(suite_from_dict(SUITE), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("command", [["run", "--resume"], ["compare", "."], ["rescore", "--metrics", "lpips"]])
def test_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys, command):
    """`ix2x compare` of a folder without run.json ended in a FileNotFoundError traceback."""
    assert main([*command, str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "must be a run directory" in err


def test_a_full_disk_before_the_first_record_does_not_suggest_resuming(tmp_path, monkeypatch):
    """The hint named `--resume DIR` for a run directory that was removed (nothing had been recorded)."""
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records, "write_json_atomic", full)
    with pytest.raises(runner.DiskFull) as e:
        runner.start_run(suite_from_dict(SUITE), tmp_path / "out")
    assert "--resume" not in str(e.value) and "run the same command again" in str(e.value)
