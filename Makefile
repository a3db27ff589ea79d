# `make demo` and `make test` each set up .venv on first use, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := demo

.PHONY: demo test install clean

install: $(STAMP)

# torch is installed first and pinned: the machine carries the 2.13.0 CPU
# wheel, while an unpinned resolve would fetch several GB of CUDA packages.
$(STAMP): pyproject.toml CMakeLists.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m training.make_dataset --out $(DEMO)/data --seed 0 --force
	$(PY) -m training.train --family brn --data $(DEMO)/data --out $(DEMO)/run \
		--base-width 16 --epochs 12 --steps-per-epoch 25 --eval-every 3 --seed 0
	$(PY) -m export.build --checkpoint $(DEMO)/run/best.pth --out $(DEMO)/bundle --force

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build $(DEMO) .pytest_cache
