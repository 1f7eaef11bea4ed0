# Promptscape's developer commands. Each target sets up what it needs, so a fresh clone needs only these.
#   make demo       the main job: a world and a material from a prompt, into a .blend and a rendered preview
#   make test       lint, the zip and its repository, the pure tests, then the suites inside real Blender
#                   4.2 LTS, 5.0 and 5.2 LTS
#   make test-fast  the pure tests (no Blender, no zip) under Python 3.11 + numpy 1 and Python 3.13 + numpy 2
#   make bench      the benchmarks (figures as ratios against baselines measured in the same run)
#   make zip        dist/promptscape-<version>.zip, built by Blender's own builder
#   make repo       dist/ as a remote extension repository (the zip and index.json) for a static web server
#   make serve      the Promptscape server (Ray Serve) on 127.0.0.1:8765; SERVE_ARGS="--token-file F --models DIR"
# Blender 4.2 and 5.0 run Python 3.11, Blender 5.1 and newer Python 3.13: give either with PYTHON311=... or
# PYTHON313=...; otherwise they are looked up on the PATH and among pyenv's versions.
PYTHON311 ?= $(shell tools/find-python 3.11)
PYTHON313 ?= $(shell tools/find-python 3.13)
VENV := .venv
PIP_FLAGS := --quiet --disable-pip-version-check
PURE := tests/pure
BLENDER_SUITES := tests --ignore=$(PURE)

.PHONY: setup demo test test-fast test-4.2 test-5.0 test-5.2 lint bench zip repo serve clean

setup: $(VENV)/.installed

# A venv is rebuilt only when its requirements change; the stamp records the last good install. Each one
# then hardlinks the large files it shares with the others (the same torch, about 5 GB: see the script).
# .venv is Blender 5.0's, the main one (lint, demo, bench, zip); the others are named for their Blender.
$(VENV)/.installed: requirements-5.0.txt requirements-common.txt
	@test -n "$(PYTHON311)" || { echo "Blender 5.0 runs Python 3.11: install python3.11 or set PYTHON311=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON311) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-5.0.txt
	$(VENV)/bin/python tools/share_venv_files.py $(VENV)
	touch $@

.venv-4.2/.installed: requirements-4.2.txt requirements-common.txt
	@test -n "$(PYTHON311)" || { echo "Blender 4.2 LTS runs Python 3.11: install python3.11 or set PYTHON311=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON311) -m venv .venv-4.2
	.venv-4.2/bin/python -m pip install $(PIP_FLAGS) -r requirements-4.2.txt
	.venv-4.2/bin/python tools/share_venv_files.py .venv-4.2
	touch $@

.venv-5.2/.installed: requirements-5.2.txt requirements-common.txt
	@test -n "$(PYTHON313)" || { echo "Blender 5.2 LTS runs Python 3.13, which this machine lacks: install it (apt install python3.13, or pyenv install 3.13) or set PYTHON313=/path/to/python3.13" >&2; exit 1; }
	$(PYTHON313) -m venv .venv-5.2
	.venv-5.2/bin/python -m pip install $(PIP_FLAGS) -r requirements-5.2.txt
	.venv-5.2/bin/python tools/share_venv_files.py .venv-5.2
	touch $@

# The server's own environment: Ray Serve and the engine, never Blender (tests/test_remote.py starts it).
.venv-server/.installed: server/requirements.txt
	@test -n "$(PYTHON311)" || { echo "The server runs Python 3.11: install python3.11 or set PYTHON311=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON311) -m venv .venv-server
	.venv-server/bin/python -m pip install $(PIP_FLAGS) -r server/requirements.txt
	.venv-server/bin/python tools/share_venv_files.py .venv-server
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint repo test-fast test-5.0 test-4.2 test-5.2

test-fast: $(VENV)/.installed .venv-5.2/.installed
	$(VENV)/bin/python -m pytest $(PURE)
	.venv-5.2/bin/python -m pytest $(PURE)

test-5.0: $(VENV)/.installed .venv-server/.installed
	$(VENV)/bin/python -m pytest $(BLENDER_SUITES)

# Blender 4.2 LTS: everything but the long tests, which exercise our code rather than Blender's.
test-4.2: .venv-4.2/.installed .venv-server/.installed
	.venv-4.2/bin/python -m pytest $(BLENDER_SUITES) -m "not slow"

test-5.2: .venv-5.2/.installed .venv-server/.installed
	.venv-5.2/bin/python -m pytest $(BLENDER_SUITES)

demo: $(VENV)/.installed
	$(VENV)/bin/python tools/demo.py

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/run.py

zip: $(VENV)/.installed
	$(VENV)/bin/python tools/blender_tools.py zip dist

repo: $(VENV)/.installed
	$(VENV)/bin/python tools/blender_tools.py repo dist

SERVE_ARGS ?=
serve: .venv-server/.installed
	.venv-server/bin/python -m server $(SERVE_ARGS)

clean:
	rm -rf $(VENV) .venv-4.2 .venv-5.2 .venv-server .cache dist
