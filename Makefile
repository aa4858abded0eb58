# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: test demo example bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[tf,test]"
	# pyotb 2.2 pins numpy<2 but needs only NumPy's basics: the otbApplication tests run it on eotensor.
	$(PY) -m pip install -q --no-deps "pyotb==2.2.*"
	rm -f $(VENV)/.installed-*
	touch $@

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	$(PY) -m eotensor.demo

# examples/fcnn: OTBTF's FCNN building segmentation, from a generated 2048 x 2048 scene to a served map, with
# timings and the map's precision / recall / accuracy (about 2 minutes on 2 cores). Outputs in example-output/.
EXAMPLE_SIZE ?= 2048
EXAMPLE_EPOCHS ?= 3
example: $(STAMP)
	$(PY) examples/fcnn/workflow.py --size $(EXAMPLE_SIZE) --epochs $(EXAMPLE_EPOCHS) --outdir example-output

# Benchmarks (issue 3): never part of `make test`. ROUNDS / SIZE select a quick subset.
ROUNDS ?= all
SIZE ?= 10980
RUNS ?= 3
bench: $(STAMP)
	$(PY) bench/run.py --rounds $(ROUNDS) --size $(SIZE) --runs $(RUNS)

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) demo-output example-output .pytest_cache
