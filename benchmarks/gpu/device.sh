#!/usr/bin/env bash
# The GPU check on a bare CUDA machine with torch, transformers and accelerate preinstalled and no
# package registry (this workplace's device machine). Prepare once where pip works:
#   echo /.whl/ >> .git/info/exclude && make gpu-wheels
# then run this from the repository root with .whl carried; results land in ${OUT:-results}/.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
# ix2x's entry points (editors, metrics) need the project installed; nothing is fetched.
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
dest=${OUT:-results}
HF_HUB_OFFLINE=1 timeout 540 python3 -m benchmarks.gpu.check --out /tmp/gpu_check "$@" || echo "gpu-check exit $?"
mkdir -p "$dest"
cp /tmp/gpu_check/gpu_check.json /tmp/gpu_check/gpu_check.md "$dest"/ 2>/dev/null || true
