"""The `threads` setting: chosen for the machine when left out, recorded in run.json, applied while
editing and scoring, kept on resume."""

import json
import os

import torch

from ix2x.benchmarks import runner
from ix2x.cli.main import main
from ix2x.threads import _cgroup_cpus, default_threads

SUITE = {"name": "threads", "editors": [{"name": "identity"}], "metrics": [{"name": "out_of_mask_change"}],
         "batch_size": 2}


def _suite_file(tmp_path, samples, **over):
    from samples_for_tests import write_mimic_dir

    data = write_mimic_dir(tmp_path / "data", samples)
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps({**SUITE, "data": {"source": "dir", "path": str(data), "split": "test"}, **over}))
    return path


def _threads_while_editing(monkeypatch) -> list[int]:
    seen = []
    edit_and_score = runner._edit_and_score

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return edit_and_score(*args, **kwargs)

    monkeypatch.setattr(runner, "_edit_and_score", spy)
    return seen


def test_threads_1_is_recorded_and_used_then_kept_on_resume(tmp_path, samples, monkeypatch, capsys):
    seen = _threads_while_editing(monkeypatch)
    before = torch.get_num_threads()
    suite = _suite_file(tmp_path, samples)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet", "--threads", "1"]) == 0
    (run_dir,) = (tmp_path / "out" / "threads").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["suite"]["threads"] == 1
    assert seen == [1] and torch.get_num_threads() == before  # set while editing, restored after
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), "--quiet", "--threads", "3"]) == 0
    err = capsys.readouterr().err
    assert "--threads 3 is ignored with --resume" in err and "the 1 thread(s) it started with" in err
    assert seen == [1, 1] and json.loads((run_dir / "run.json").read_text())["suite"]["threads"] == 1


def test_left_out_threads_are_chosen_for_the_machine_and_recorded(tmp_path, samples):
    suite = _suite_file(tmp_path, samples)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "out" / "threads").iterdir()
    recorded = json.loads((run_dir / "run.json").read_text())["suite"]["threads"]
    assert recorded == default_threads()
    assert 1 <= recorded <= len(os.sched_getaffinity(0))


def test_suite_threads_and_bad_values(tmp_path, samples, capsys):
    suite = _suite_file(tmp_path, samples, threads=0)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "`threads` must be an integer >= 1 or null" in capsys.readouterr().err
    suite = _suite_file(tmp_path, samples)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet", "--threads", "0"]) == 2
    assert "`--threads` must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cgroup_quota(tmp_path):
    f = tmp_path / "cpu.max"
    f.write_text("150000 100000\n")
    assert _cgroup_cpus(f) == 2  # 1.5 CPUs of time: two threads, each busy 75 %
    f.write_text("max 100000\n")
    assert _cgroup_cpus(f) is None
    assert _cgroup_cpus(tmp_path / "absent") is None


def test_score_takes_threads_as_run_does(tmp_path, samples):
    from ix2x.data.mimic import MimicEditDataset
    from ix2x.images import save_image

    suite = _suite_file(tmp_path, samples)
    folder = tmp_path / "edits"
    ids = MimicEditDataset(tmp_path / "data", split="test").sample_ids
    for sid, s in zip(ids, samples):
        save_image(folder / f"{sid}.png", s.target, bits=8)
    assert main(["score", "--suite", str(suite), "--edits", f"mine={folder}", "--out", str(tmp_path / "out"),
                 "--quiet", "--threads", "1"]) == 0
    (run_dir,) = (tmp_path / "out" / "threads").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["suite"]["threads"] == 1


def test_a_shard_started_again_with_other_threads_keeps_its_count_as_resume_does(tmp_path, samples, capsys):
    """Regression: the shard's directory was refused as "another run" for --threads alone, while
    --resume kept the recorded count with a note."""
    suite = _suite_file(tmp_path, samples)
    shard = ["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet", "--shard", "0/2"]
    assert main([*shard, "--threads", "1"]) == 0
    (run_dir,) = (tmp_path / "out" / "threads").iterdir()
    before = (run_dir / "samples.jsonl").read_bytes()
    capsys.readouterr()
    assert main([*shard, "--threads", "2"]) == 0
    err = capsys.readouterr().err
    assert "--threads 2 is ignored when shard 0/2 starts again" in err and "the 1 thread(s) it started with" in err
    assert json.loads((run_dir / "run.json").read_text())["suite"]["threads"] == 1
    assert (run_dir / "samples.jsonl").read_bytes() == before  # the same run, nothing redone
    assert main([*shard]) == 0 and "ignored" not in capsys.readouterr().err  # nothing asked: nothing to say
