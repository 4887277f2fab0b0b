"""The Slurm profile for real, on a one-node local Slurm (`make test-slurm` starts one: scripts/local_slurm.sh).
Skipped where no Slurm controller answers. Runs the data rule as a Slurm job through the real executor plugin."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = "pytest_slurm"


def idle_slurm_node() -> bool:
    if shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    return proc.returncode == 0 and "idle" in proc.stdout.split()


@pytest.mark.skipif(not idle_slurm_node(), reason="no Slurm controller with an idle node (make test-slurm starts one)")
def test_data_rule_runs_as_a_slurm_job():
    results = ROOT / "results" / STUDY
    shutil.rmtree(results, ignore_errors=True)
    target = f"results/{STUDY}/data/sft.jsonl"
    # The site overrides a user of a local cluster would put in their profile: partition, small resources, and
    # squeue for job status because a local Slurm has no accounting storage.
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "--profile", "profiles/slurm", "--configfile", "config/smoke.yaml",
         "--config", f"study={STUDY}", "--slurm-status-command", "squeue",
         "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5",
         "--default-resources", "slurm_partition=debug", "mem_mb=2000", "runtime=10", "cpus_per_task=1",
         "--set-resources", "data:slurm_partition=debug", "data:mem_mb=2000"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "has been submitted with SLURM jobid" in proc.stderr
        assert (ROOT / target).stat().st_size > 0
    finally:
        shutil.rmtree(results, ignore_errors=True)
