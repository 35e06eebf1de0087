"""Streaming: memory stays flat with dataset size. Slow (generates 10,000 phantom pairs):
run with `make test-slow`."""

import os
import resource
import subprocess
import sys

import pytest

SUITE = """
name: memory
data: {{source: phantom, split: test, phantom: {{n: {n}, seed: 0, size: 64}}, limit: {limit}}}
editors: [{{name: identity}}]
metrics: [{{name: out_of_mask_change}}]
batch_size: 16
save_images: false
"""


@pytest.mark.slow
def test_10000_samples_with_identity_under_2_gb(tmp_path):
    # The train split holds 80 % of the pairs: 12,500 generated leave 10,000 to evaluate.
    suite = tmp_path / "memory.yaml"
    suite.write_text(SUITE.format(n=12500, limit=10000).replace("split: test", "split: train"))
    env = {**os.environ, "IX2X_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "ix2x", "run", "--suite", str(suite), "--quiet",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(10000)" in proc.stdout
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # ru_maxrss is in KiB
    print(f"peak RSS of the 10,000-sample run: {peak_gb:.2f} GB")
    assert peak_gb < 2.0
