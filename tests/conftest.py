"""Fixtures shared by test files."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.smoke_study import SMOKE_STUDY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smoke():
    """results/pytest_smoke: config/smoke.yaml run once through the real Snakemake (about 4 minutes), shared by
    tests/test_dag.py and tests/test_report.py so that CI runs the smoke DAG once."""
    results = ROOT / "results" / SMOKE_STUDY
    shutil.rmtree(results, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/smoke.yaml",
                           "--config", f"study={SMOKE_STUDY}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    yield results
    shutil.rmtree(results, ignore_errors=True)
