# configmgr.sql_upgrade: developer and CI entry points. `make help` lists the targets.
#
# Every target builds (or reuses) .venv from pinned requirements with the image's python3.11, so a
# fresh machine needs nothing but Python and pip. See docs/development.md for the details.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.requirements.stamp
COLLECTIONS_DIR := $(VENV)/collections
COLLECTIONS_STAMP := $(COLLECTIONS_DIR)/.collections.stamp
BUILD := .build
LAYOUT := $(BUILD)/collections/ansible_collections/configmgr/sql_upgrade
SIZE ?= 5
PYTEST_ARGS ?=
# Test processes for pytest (pytest-xdist). A file's tests stay in one process (--dist loadfile): module fixtures such
# as the fault matrix's run once. PYTEST_WORKERS=0 runs everything in this process (a debugger, -x, -s).
PYTEST_WORKERS ?= 2
PYTEST_XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),-p no:xdist,-n $(PYTEST_WORKERS) --dist loadfile)
TWIN_ARGS ?=
BENCH_ARGS ?=
FAULTS_ARGS ?=
TWIN_INVENTORY ?= twin.yml

# Both collections resolvable for ansible-playbook, ansible-doc, ansible-lint and pytest's subprocesses.
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(BUILD)/collections:$(CURDIR)/$(COLLECTIONS_DIR)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export ANSIBLE_NOCOLOR := 1

TEST_STEPS := pytest sanity lint pscheck docs-lint

.PHONY: help venv layout test unit twin-test system system-all pytest sanity lint ruff ansible-lint pscheck docs-lint twin demo bench faults clean

help:
	@echo "make test       pytest + sanity + lint + pscheck + docs-lint (runs all, fails if any fails)"
	@echo "make unit       pytest tests/unit (the collection: planners, action plugins, contracts, tools)"
	@echo "make twin-test  pytest tests/twin/tests (the twin's own model and WinRM front end)"
	@echo "make system     pytest tests/system (real ansible-playbook over WinRM against twin hosts)"
	@echo "make system-all the same over both connection plugins for every test (make test: psrp for a subset)"
	@echo "make pytest     all three of the above"
	@echo "make sanity     ansible-test sanity, offline, in a temporary ansible_collections tree"
	@echo "make lint       ruff + ansible-lint --profile production (offline)"
	@echo "make pscheck    parse every .ps1 with tree-sitter; WMI/CIM use in the WMI-free window"
	@echo "make docs-lint  antsibull-docs lint-collection-docs --plugin-docs + antsibull-changelog lint"
	@echo "make twin SIZE=5  start a twin fleet, write its inventory to twin.yml (Ctrl-C stops it)"
	@echo "make bench      speed targets; the whole procedure against a hand-written playbook (table + JSON)"
	@echo "make faults     the fault matrix: every twin fault at every step, a summary table"
	@echo "make demo       the rolling SQL Server upgrade of a 19-site twin hierarchy, with its report"
	@echo "make venv       create .venv from requirements/ (done by every target)"
	@echo "make clean      remove .venv, .build and caches"

# --- environment ---------------------------------------------------------------------------------

venv: $(VENV_STAMP) $(COLLECTIONS_STAMP) layout

$(VENV_STAMP): requirements/test.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --requirement requirements/test.txt
	@touch $@

# ansible.windows from the `ansible` wheel on PyPI (Galaxy is unreachable offline): one download, then
# only ansible_collections/ansible/windows/ is kept. The wheel is deleted afterwards (54 MB).
$(COLLECTIONS_STAMP): requirements/collections.txt tests/tools/install_collection.py | $(VENV_STAMP)
	@rm -rf $(VENV)/downloads
	$(PY) -m pip download --quiet --no-deps --dest $(VENV)/downloads --requirement requirements/collections.txt
	$(PY) tests/tools/install_collection.py $(VENV)/downloads/ansible-*.whl ansible.windows $(COLLECTIONS_DIR)
	@rm -rf $(VENV)/downloads
	@touch $@

# .build/collections/ansible_collections/configmgr/sql_upgrade -> the repository root (relative link).
layout:
	@mkdir -p $(dir $(LAYOUT))
	@test "$$(readlink $(LAYOUT) 2>/dev/null)" = "../../../.." || ln -sfn ../../../.. $(LAYOUT)

# --- the test suite ----------------------------------------------------------------------------------

# Runs every step even when one fails, prints each step's wall time, then fails if any step failed.
test: venv
	@failed=""; summary=""; \
	for step in $(TEST_STEPS); do \
	  echo "=== make $$step"; start=$$(date +%s.%N); \
	  if $(MAKE) $$step; then status=ok; else status=FAILED; failed="$$failed $$step"; fi; \
	  summary="$$summary$$(awk -v s=$$start -v e=$$(date +%s.%N) -v n=$$step -v r=$$status 'BEGIN { printf "%-10s %-7s %6.1fs", n, r, e - s }')\n"; \
	done; \
	echo "=== summary"; printf "$$summary"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: all passed"

# pytest's exit code 5 (no tests collected) is non-zero, so an empty suite fails the build too.
pytest: venv
	$(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_XDIST) $(PYTEST_ARGS)

twin-test: venv
	$(PY) -m pytest tests/twin/tests $(PYTEST_XDIST) $(PYTEST_ARGS)

system: venv
	$(PY) -m pytest tests/system $(PYTEST_XDIST) $(PYTEST_ARGS)

# Every system test over winrm and psrp (make test runs psrp for the tests marked both_connections).
system-all: venv
	TWIN_ALL_CONNECTIONS=1 $(PY) -m pytest tests/system $(PYTEST_XDIST) $(PYTEST_ARGS)

sanity: venv
	$(PY) tests/tools/sanity.py

# Both linters always run; the target fails if either failed.
lint: venv
	@rc=0; $(MAKE) ruff || rc=1; $(MAKE) ansible-lint || rc=1; exit $$rc

ruff: venv
	$(VENV)/bin/ruff check .

# From the ansible_collections layout (a logical path through the symlink), as ansible-lint expects a
# collection; .ansible-lint sets profile: production and offline: true.
ansible-lint: venv
	cd $(LAYOUT) && $(CURDIR)/$(VENV)/bin/ansible-lint $(if $(CI),--nocolor,)

pscheck: venv
	$(PY) tests/tools/pscheck.py

# Both checks always run; the target fails if either failed.
docs-lint: venv
	@rc=0; \
	(set -x; cd $(LAYOUT) && antsibull-docs lint-collection-docs --plugin-docs .) || rc=1; \
	(set -x; antsibull-changelog lint) || rc=1; \
	exit $$rc

# The inventory goes to twin.yml in the repository (git ignores it), where the README's next step reads it.
twin: venv
	PYTHONPATH=tests $(PY) -m twin fleet --size $(SIZE) --inventory $(TWIN_INVENTORY) $(TWIN_ARGS)

# Speed targets (50-host fleet start, WinRM calls per quiesce), measured, never in timed unit tests.
# Both parts run (each prints its table); the target fails if either misses a target. BENCH_ARGS goes to the
# second, e.g. BENCH_ARGS="--fleet 40 --batch 10" for a shorter makespan run (default: 200 hosts, batches of 20).
bench: venv
	@rc=0; $(PY) tests/bench/bench_twin.py || rc=1; \
	$(PY) tests/bench/bench_procedure.py $(BENCH_ARGS) || rc=1; exit $$rc

# The fault matrix: every twin fault at every step of the procedure, through the role; a summary table in
# .build/faults/summary.md (make test runs the fast subset, tests/system/test_fault_matrix.py).
faults: venv
	$(PY) tests/faults/matrix.py $(FAULTS_ARGS)

# playbooks/rolling_sql_upgrade.yml against a 19-site twin hierarchy, then each host's state and the report.
demo: venv
	$(PY) tests/tools/demo.py

clean:
	rm -rf $(VENV) $(BUILD) tests/output .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
