"""The torch thread count changes an edit's bytes: a resume under another count than the run was
started with says so and records it (main resumed silently)."""

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


def test_resume_under_another_thread_count_says_so(tmp_path, samples, threads):
    suite = suite_from_dict({"name": "th", "editors": [{"name": "identity"}], "isolation": "none", "batch_size": 2,
                             "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}]})
    threads(1)
    run_dir = runner.start_run(suite, tmp_path)

    def stop(n):
        if n >= 2:
            raise Stop

    with pytest.raises(Stop):
        runner.execute(run_dir, samples, progress=False, on_batch=stop)
    threads(1)
    same = runner.execute(Path(run_dir), samples, progress=False)  # nothing to say with the same count
    assert not [n for n in same.notes if "thread" in n]

    run_dir = runner.start_run(suite, tmp_path)
    with pytest.raises(Stop):
        runner.execute(run_dir, samples, progress=False, on_batch=stop)
    threads(2)
    out = runner.execute(run_dir, samples, progress=False)
    (note,) = [n for n in out.notes if "thread" in n]
    assert "started with 1 torch thread(s) and resumes with 2" in note and "OMP_NUM_THREADS=1" in note
    assert [(c["from"], c["to"]) for c in rundir.read_meta(run_dir).extra["thread_changes"]] == [(1, 2)]
