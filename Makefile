# The README's two commands: `make run` (set up + default study) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
CONFIG ?= config/config.yaml

.PHONY: setup run test test-slurm dry-run benchmark clean

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

run: $(INSTALLED)
	$(VENV)/bin/snakemake --cores all --configfile $(CONFIG)

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest

test-slurm: $(INSTALLED)    # needs root on Debian: starts a one-node Slurm, runs a rule through the Slurm profile
	scripts/local_slurm.sh start
	$(VENV)/bin/python -m pytest tests/test_slurm.py; status=$$?; scripts/local_slurm.sh stop; exit $$status

dry-run: $(INSTALLED)
	$(VENV)/bin/snakemake -n --configfile $(CONFIG)

benchmark: $(INSTALLED)
	$(VENV)/bin/python benchmarks/dag_walltime.py

clean:
	rm -rf results/*/ .snakemake
