"""Two processes under torchrun (gloo, CPU) produce the records of one process."""

import os
import shutil
import subprocess
import sys

import pytest

from ix2x import records
from samples_for_tests import tiny_samples, write_mimic_dir

SUITE = """
name: shard
data: {{source: dir, path: {data}, split: test}}
editors: [{{name: identity}}, {{name: oracle}}]
metrics: [{{name: out_of_mask_change}}]
batch_size: 2
"""


def _run(cmd, out, env):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = list((out / "shard").iterdir())
    return run_dir


def _strip(run_dir):
    return records.without_timings(records.RunDir.open(run_dir).records())


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is not installed beside this Python")
def test_two_ranks_merge_to_single_process_records(tmp_path):
    data = write_mimic_dir(tmp_path / "data", tiny_samples(n=7))
    suite = tmp_path / "shard.yaml"
    suite.write_text(SUITE.format(data=data))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    sharded = _run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "ix2x", "run", "--suite",
                    str(suite), "--quiet", "--out", str(tmp_path / "a")], tmp_path / "a", env)
    single = _run([sys.executable, "-m", "ix2x", "run", "--suite", str(suite), "--quiet", "--out",
                   str(tmp_path / "b")], tmp_path / "b", env)
    assert not list(sharded.glob("samples.rank*.jsonl"))  # merged and removed
    # 7 samples x 2 editors: rank 0 edits samples 0, 2, 4, 6 and rank 1 samples 1, 3, 5.
    merged = records.RunDir.open(sharded).meta["merged_from"]
    assert merged == {"samples.rank0.jsonl": 8, "samples.rank1.jsonl": 6}
    assert _strip(sharded) == _strip(single) and len(_strip(single)) == 14
    summary = lambda d: [r for r in records.RunDir.open(d).summary() if r["metric"] != "latency"]  # noqa: E731
    assert summary(sharded) == summary(single)
