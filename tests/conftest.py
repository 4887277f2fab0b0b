"""Fixtures shared by test files."""

import os
import shutil
import socket
import subprocess
import sys
import time
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


@pytest.fixture(scope="session")
def warm_server(tmp_path_factory):
    """(socket, log) of a pipeline.warm server with the real preload (torch, transformers, TRL, ...), listening."""
    path = tmp_path_factory.mktemp("warm") / "s.sock"
    log_path = path.with_suffix(".log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.warm", "serve", "--socket", str(path),
                                 "--parent", str(os.getpid())], cwd=ROOT, stdout=log, stderr=log)
    deadline = time.monotonic() + 300
    while True:
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(path))
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"the warm server did not listen within 300 s: {log_path.read_text()}")
            time.sleep(0.5)
        finally:
            probe.close()
    yield path, log_path
    proc.terminate()
    proc.wait(timeout=30)
    assert not path.exists(), "the server removes its socket when it stops"
