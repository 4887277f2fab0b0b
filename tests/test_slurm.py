"""Slurm as users type it: `snakemake --profile slurm` from the repo root (the root `slurm` link), per-rule resources
in the workflow profile keyed by real rules, GPUs on every training/sampling/generation job of the real study and
none on judging/scoring; and the profile for real on a one-node local Slurm (scripts/local_slurm.sh, started and
stopped here; it installs slurm-wlm and munge when absent, which needs root on Debian as in CI)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STUDY = "pytest_slurm"
REAL = "config/rlhf_workflow.yaml"
# Every rule is one or the other: a new rule fails test_every_rule_is_classified until it is placed here.
GPU_RULES = {"base", "sft", "reward_model", "train", "iterative_iteration", "generate"}
CPU_RULES = {"data", "download", "evaluate", "leaderboard", "aggregate", "length_analysis",
             "iterative_final", "inference_rule", "all"}


def snakemake(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OPENAI_API_KEY": "dummy", **(env or {})})


@cache
def rules(config: str) -> frozenset[str]:
    proc = snakemake("--list-rules", "--configfile", config)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return frozenset(line.strip() for line in proc.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", line))


def dry_run_jobs(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job in a dry run's listing."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", stdout)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        line = re.search(r"^\s+resources: (.*)$", block, re.M)
        resources = dict(kv.split("=", 1) for kv in line.group(1).split(", ")) if line else {}
        jobs.append((rule, resources))
    return jobs


@pytest.fixture(scope="module")
def real_dry_run(tmp_path_factory) -> list[tuple[str, dict[str, str]]]:
    """The acceptance command, literally, from the repo root; a user's own profile named `slurm` in their
    Snakemake config folder (a decoy asking for 7-minute jobs) must not be picked instead of ours."""
    xdg = tmp_path_factory.mktemp("xdg")
    (xdg / "snakemake" / "slurm").mkdir(parents=True)
    (xdg / "snakemake" / "slurm" / "config.yaml").write_text("default-resources: [runtime=7]\n")
    proc = snakemake("-n", "--profile", "slurm", "--configfile", REAL, env={"XDG_CONFIG_HOME": str(xdg)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Using profiles slurm and workflow specific profile profiles/default" in proc.stdout + proc.stderr
    jobs = dry_run_jobs(proc.stdout)
    assert jobs, proc.stdout[-2000:]
    return jobs


def test_every_resource_key_names_a_rule():
    """Guards against resources set for names that are not rules (they were `judge_alpaca_eval`,
    `score_alpaca_eval`): Snakemake ignores them silently and the real rule runs with defaults."""
    profile = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    known = rules(REAL) | rules("config/config.yaml")
    assert set(profile["set-resources"]) <= known, set(profile["set-resources"]) - known
    assert "set-resources" not in yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text()), \
        "per-rule resources belong in the workflow profile, where a site's own profile picks them up too"


def test_every_rule_is_classified():
    assert rules(REAL) | rules("config/config.yaml") <= GPU_RULES | CPU_RULES


def test_real_study_gives_gpus_to_training_sampling_and_generation_and_none_to_judging(real_dry_run):
    """Guards against a training, sampling or generation job landing on a node without a GPU (reward_model and
    iterative_iteration had none) and against evaluation (judge and score) jobs holding GPUs."""
    seen = {rule for rule, _ in real_dry_run}
    assert {"sft", "reward_model", "train", "iterative_iteration", "generate", "evaluate"} <= seen
    for rule, resources in real_dry_run:
        if rule in GPU_RULES:
            assert int(resources.get("gpu", 0)) >= 1, (rule, resources)
        else:
            assert "gpu" not in resources and "gres" not in resources, (rule, resources)


def test_root_slurm_profile_wins_over_a_users_own(real_dry_run):
    assert all(resources.get("runtime") != "7" for _, resources in real_dry_run)


# -- the profile for real on a one-node local Slurm ---------------------------------------------------------------

def slurm_idle() -> bool:
    if shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    return proc.returncode == 0 and "idle" in proc.stdout.split()


@pytest.fixture(scope="module")
def local_slurm():
    """A running one-node Slurm: the one already up, else started here (and stopped after) by
    scripts/local_slurm.sh, which installs slurm-wlm and munge when absent (root on Debian, as CI)."""
    if slurm_idle():
        yield
        return
    if os.geteuid() != 0:
        pytest.skip("no Slurm running here and not root to start one (CI runs as root: .ci/run)")
    script = ROOT / "scripts" / "local_slurm.sh"
    proc = subprocess.run([str(script), "start"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    try:
        yield
    finally:
        subprocess.run([str(script), "stop"], timeout=60)


def test_data_rule_runs_as_a_slurm_job(local_slurm):
    """The literal profile through the real executor plugin on a real Slurm: the job is submitted to the partition
    the site's SBATCH_PARTITION names, runs, and Snakemake sees it finish (a local Slurm has no accounting storage:
    squeue for status)."""
    results = ROOT / "results" / STUDY
    shutil.rmtree(results, ignore_errors=True)
    target = f"results/{STUDY}/data/sft.jsonl"
    proc = snakemake(target, "--profile", "slurm", "--configfile", "config/smoke.yaml", "--config", f"study={STUDY}",
                     "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                     "--latency-wait", "5", "--set-resources", "data:mem_mb=1000", "data:cpus_per_task=1",
                     "data:runtime=10", env={"SBATCH_PARTITION": "debug"}, timeout=300)
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "has been submitted with SLURM jobid" in proc.stderr
        assert (ROOT / target).stat().st_size > 0
    finally:
        shutil.rmtree(results, ignore_errors=True)
