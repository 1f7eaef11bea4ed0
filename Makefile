# Promptscape's developer commands. Each target sets up what it needs, so a fresh clone needs only these.
#   make demo   the main job: a world and a material from a prompt, into a .blend and a rendered preview
#   make test   lint, then the test suite inside real Blender 5.0 and Blender 4.2 LTS
#   make bench  the benchmarks (figures as ratios against baselines measured in the same run)
PYTHON ?= python3.11
VENV := .venv
LTS_VENV := .venv-4.2

.PHONY: setup demo test test-5.0 test-4.2 lint bench zip clean

setup: $(VENV)/.installed

# A venv is rebuilt only when its requirements change; the stamp records the last good install.
$(VENV)/.installed: requirements-dev.txt requirements-common.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(LTS_VENV)/.installed: requirements-lts.txt requirements-common.txt
	$(PYTHON) -m venv $(LTS_VENV)
	$(LTS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-lts.txt
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint test-5.0 test-4.2

test-5.0: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

# Blender 4.2 LTS: everything but the long tests, which exercise our code rather than Blender's.
test-4.2: $(LTS_VENV)/.installed
	$(LTS_VENV)/bin/python -m pytest -m "not slow"

demo: $(VENV)/.installed
	$(VENV)/bin/python tools/demo.py

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/run.py

zip: $(VENV)/.installed
	$(VENV)/bin/python -c "import sys; sys.path.insert(0, 'tests'); import blender_tools; print(blender_tools.build_zip('dist'))"

clean:
	rm -rf $(VENV) $(LTS_VENV) .cache dist
