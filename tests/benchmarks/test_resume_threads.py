"""The torch thread count changes an edit's bytes. A run records its count (the suite's `threads`)
and resumes with it whatever the process's count; a run recorded before that setting, resumed under
another count than it was started with, says so and records it (main resumed silently)."""

from pathlib import Path

import pytest
import torch

from ix2x.benchmarks import rundir, runner
from ix2x.suite import suite_from_dict


class Stop(Exception):
    pass


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _without_threads_setting(run_dir):
    """run.json as a run recorded before the `threads` setting writes it."""
    meta = rundir.read_meta(run_dir)
    meta.suite["threads"] = None
    rundir.write_meta(run_dir, meta)
    return run_dir


SUITE = {"name": "th", "editors": [{"name": "identity"}], "isolation": "none", "batch_size": 2,
         "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}]}


def _interrupted(suite, tmp_path, samples, *, with_setting=True):
    """A run of ``suite`` stopped after its first batch; without the ``threads`` setting in run.json
    (as recorded before it existed) unless ``with_setting``."""
    run_dir = runner.start_run(suite, tmp_path)
    if not with_setting:
        _without_threads_setting(run_dir)

    def stop(n):
        if n >= 2:
            raise Stop

    with pytest.raises(Stop):
        runner.execute(run_dir, samples, progress=False, on_batch=stop)
    return Path(run_dir)


def test_resume_under_another_thread_count_says_so(tmp_path, samples, threads):
    suite = suite_from_dict(SUITE)
    threads(1)
    run_dir = _interrupted(suite, tmp_path, samples, with_setting=False)
    threads(1)
    same = runner.execute(run_dir, samples, progress=False)  # nothing to say with the same count
    assert not [n for n in same.notes if "thread" in n]

    run_dir = _interrupted(suite, tmp_path, samples, with_setting=False)
    threads(2)
    out = runner.execute(run_dir, samples, progress=False)
    (note,) = [n for n in out.notes if "thread" in n]
    assert "started with 1 torch thread(s) and resumes with 2" in note and "OMP_NUM_THREADS=1" in note
    assert [(c["from"], c["to"]) for c in rundir.read_meta(run_dir).extra["thread_changes"]] == [(1, 2)]


def test_a_run_with_its_threads_setting_resumes_with_it_and_says_nothing(tmp_path, samples, threads,
                                                                        monkeypatch):
    seen = []
    edit_and_score = runner._edit_and_score
    monkeypatch.setattr(runner, "_edit_and_score",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or edit_and_score(*a, **k))
    threads(2)
    run_dir = _interrupted(suite_from_dict({**SUITE, "threads": 1}), tmp_path, samples)
    assert rundir.read_meta(run_dir).device["torch_threads"] == 1  # the run's count, recorded
    threads(3)
    out = runner.execute(run_dir, samples, progress=False)
    assert out.ok and seen == [1, 1] and not [n for n in out.notes if "thread" in n]
    assert "thread_changes" not in rundir.read_meta(run_dir).extra
