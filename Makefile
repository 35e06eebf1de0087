# `make run` and `make test` create .venv with the installed project when it is missing or older
# than pyproject.toml, then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/ix2x run $(ARGS)

# Offline, with a throwaway HOME and TORCH_HOME: nothing is downloaded and nothing the user
# cached can leak into a test.
test: $(STAMP)
	@tmp=$$(mktemp -d); \
	HF_HUB_OFFLINE=1 HOME=$$tmp TORCH_HOME=$$tmp/torch IX2X_CACHE=$$tmp/ix2x \
	  $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; rm -rf $$tmp; exit $$rc

test-slow: $(STAMP)
	@tmp=$$(mktemp -d); \
	HF_HUB_OFFLINE=1 HOME=$$tmp TORCH_HOME=$$tmp/torch IX2X_CACHE=$$tmp/ix2x \
	  $(PY) -m pytest -m slow $(PYTEST_ARGS); rc=$$?; rm -rf $$tmp; exit $$rc

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest benchmarks/perf --benchmark-only $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) results
