# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: test demo bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[tf,test]"
	rm -f $(VENV)/.installed-*
	touch $@

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	$(PY) -m eotensor.demo

# Benchmarks (issue 3): never part of `make test`. ROUNDS / SIZE select a quick subset.
ROUNDS ?= all
SIZE ?= 10980
RUNS ?= 3
bench: $(STAMP)
	$(PY) bench/run.py --rounds $(ROUNDS) --size $(SIZE) --runs $(RUNS)

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) demo-output .pytest_cache
