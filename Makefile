# The README's two commands: `make run` (set up + default study) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
CONFIG ?= config/config.yaml

.PHONY: setup run test test-slurm serve-env dry-run benchmark clean

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

test-slurm: $(INSTALLED)    # root on Debian: the test starts a one-node Slurm (installing it if absent) and stops it
	$(VENV)/bin/python -m pytest tests/test_slurm.py

serve-env: envs/serve.txt   # GPU machines: vLLM's own environment (generation.vllm.python: .venv-serve/bin/python)
	$(PYTHON) -m venv .venv-serve
	.venv-serve/bin/python -m pip install --quiet -r envs/serve.txt

dry-run: $(INSTALLED)
	$(VENV)/bin/snakemake -n --configfile $(CONFIG)

benchmark: $(INSTALLED)
	$(VENV)/bin/python benchmarks/dag_walltime.py

clean:
	rm -rf results/*/ .snakemake
