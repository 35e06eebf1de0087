"""Streaming: memory stays flat with dataset size. Slow (generates 10,000 phantom pairs):
run with `make test-slow`."""

import os
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


def _run(tmp_path, limit: int) -> tuple[float, str]:
    """Peak RSS (GB) of one `ix2x run` process over ``limit`` train pairs, and its stdout."""
    # The train split holds 80 % of the pairs: 12,500 generated leave 10,000 to evaluate.
    suite = tmp_path / f"memory{limit}.yaml"
    suite.write_text(SUITE.format(n=12500, limit=limit).replace("split: test", "split: train"))
    env = {**os.environ, "IX2X_CACHE": str(tmp_path / "cache")}
    code = ("import resource, sys; from ix2x.cli.main import main; rc = main(sys.argv[1:]); "
            "print('MAXRSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "run", "--suite", str(suite), "--quiet",
                           "--out", str(tmp_path / f"r{limit}")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kib = int(proc.stdout.split("MAXRSS_KIB")[1].split()[0])
    return kib / 2**20, proc.stdout


@pytest.mark.slow
def test_10000_samples_with_identity_under_2_gb_and_no_more_than_1000(tmp_path):
    _run(tmp_path, 1000)  # generates and caches the phantoms, whose memory is not the runner's
    small, _ = _run(tmp_path, 1000)
    large, out = _run(tmp_path, 10000)
    assert "(10000)" in out
    print(f"peak RSS: 1,000 samples {small:.2f} GB, 10,000 samples {large:.2f} GB")
    # Streaming: ten times the samples may not cost more than noise (holding every sample and edit
    # of 64 px in memory would add about 0.65 GB).
    assert large < 2.0 and large - small < 0.15
