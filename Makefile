# Every target sets itself up on a fresh machine: a virtual environment in .venv with everything installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install dev demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# facenet-pytorch (MTCNN face weights) is installed without its dependencies: its pins are stale.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -e '.[dev,postgres]'
	$(PIP) install --no-deps 'facenet-pytorch>=2.5'
	touch $(STAMP)

install dev: $(STAMP)

demo: $(STAMP)
	$(PY) benchmarks/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo-out
