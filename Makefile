# `make run` and `make test` create .venv with the installed project when it is missing or older
# than pyproject.toml or .ci/constraints.txt, then run.
# pyproject.toml declares compatible ranges (what a plugin or another project co-installs with);
# .ci/constraints.txt pins every package to the exact set CI tested, and the install uses it (-c), so
# `make test` is reproducible. To install ix2x next to other packages, leave the -c out.
CONSTRAINTS := .ci/constraints.txt
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow bench clean chromium gpu-check gpu-wheels

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

# Without ARGS: the default suite, then the comparison with the original paper's baseline editors
# (README: "What `make run` produced"; docs/baselines.md). With ARGS: `ix2x run $(ARGS)`.
RUN_SUITES ?= phantom phantom_baselines
run: $(STAMP)
	@if [ -n "$(ARGS)" ]; then $(VENV)/bin/ix2x run $(ARGS); \
	else for s in $(RUN_SUITES); do $(VENV)/bin/ix2x run --suite $$s || exit 1; done; fi

# Offline, with a throwaway HOME and TORCH_HOME: nothing is downloaded and nothing the user
# cached can leak into a test.
test: $(STAMP) chromium
	@tmp=$$(mktemp -d); \
	HF_HUB_OFFLINE=1 HOME=$$tmp TORCH_HOME=$$tmp/torch IX2X_CACHE=$$tmp/ix2x \
	  $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; rm -rf $$tmp; exit $$rc

# The report test opens the HTML report in headless Chromium; install Debian's package when we can,
# otherwise that one test is skipped and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null 2>&1; } || \
	  echo "note: chromium could not be installed; the report's browser test will be skipped"

test-slow: $(STAMP)
	@tmp=$$(mktemp -d); \
	HF_HUB_OFFLINE=1 HOME=$$tmp TORCH_HOME=$$tmp/torch IX2X_CACHE=$$tmp/ix2x \
	  $(PY) -m pytest -m slow $(PYTEST_ARGS); rc=$$?; rm -rf $$tmp; exit $$rc

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest benchmarks/perf --benchmark-only $(PYTEST_ARGS)

# The full-size path on a CUDA GPU in one command (< 8 min on an H100/H200): writes
# results/gpu_check/gpu_check.json and gpu_check.md (docs/performance.md). Without CUDA it says so and
# exits 0. It uses .venv when `make` built one, else the machine's python3 (a GPU box with torch
# preinstalled and no package registry: copy the wheels of `make gpu-wheels` to it, see
# benchmarks/gpu/device.sh).
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))
gpu-check:
	HF_HUB_OFFLINE=1 $(GPU_PY) -m ix2x.benchmarks.gpu.check --out results/gpu_check $(ARGS)

# Wheels the GPU check needs beyond a CUDA image's torch/transformers/accelerate (pure Python).
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 lpips==0.1.4 importlib_metadata==8.7.0

clean:
	rm -rf $(VENV) results
