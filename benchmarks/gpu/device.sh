#!/usr/bin/env bash
# `make gpu-check` on a bare CUDA machine that has torch, transformers and accelerate installed but no
# package registry. Prepare once where pip works, in the repo root:
#   make gpu-wheels            # diffusers, lpips, importlib_metadata into .whl/ (git-ignored)
# then, on the GPU machine, from the repository root, with .whl/ copied there too:
#   bash benchmarks/gpu/device.sh [check options]
# gpu_check.json and gpu_check.md land in $OUT when it is set, else in results/gpu_check.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
# ix2x's entry points (editors, metrics) need the project installed; --no-deps: nothing is fetched.
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . ||
  { echo "device.sh: the editable install of ix2x failed (see above); the check imports ix2x.benchmarks, which only an install provides" >&2; exit 1; }
work=/tmp/gpu_check
status=0
if command -v make >/dev/null; then
  timeout 560 make gpu-check PYTHON=python3 ARGS="--out $work $*" || status=$?
else
  HF_HUB_OFFLINE=1 timeout 560 python3 -m ix2x.benchmarks.gpu.check --out "$work" "$@" || status=$?
fi
dest=${OUT:-results/gpu_check}
mkdir -p "$dest"
cp "$work"/gpu_check.json "$work"/gpu_check.md "$dest"/ 2>/dev/null || true
exit $status
