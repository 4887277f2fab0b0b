"""The whole DAG through the real Snakemake on config/smoke.yaml, and dry runs of every shipped config."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.config import models
from pipeline.io import read_json, read_jsonl
from pipeline.provenance import read_provenance
from tests.smoke_study import SMOKE_STUDY
from world.tasks import is_correct

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CONFIGS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "config").glob("*.yaml"))
OVERLAYS = {"config/rehearsal.yaml": "config/rlhf_workflow.yaml"}  # an overlay is dry-run on the config it modifies
STUDY = SMOKE_STUDY


def snakemake(*args, check=True, env=None):
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.parametrize("config", CONFIGS)
def test_dry_run_prints_whole_dag(config):
    # -F: the whole DAG even where an earlier run left results; a dummy key for configs with API judges
    files = [OVERLAYS[config], config] if config in OVERLAYS else [config]
    proc = snakemake("-n", "-F", "--configfile", *files, env={"OPENAI_API_KEY": "dummy-key-for-dry-run"})
    assert "aggregate" in proc.stdout and "This was a dry-run" in proc.stdout


def test_api_judge_key_is_required_before_any_job():
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    proc = subprocess.run([*SNAKEMAKE, "-n", "--configfile", "config/rlhf_workflow.yaml"], cwd=ROOT,
                          capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert "environment variables are requested by the workflow but undefined" in proc.stdout + proc.stderr
    assert "OPENAI_API_KEY" in proc.stdout + proc.stderr


def test_dry_run_with_slurm_profile():
    proc = snakemake("-n", "--profile", "profiles/slurm", "--configfile", "config/config.yaml")
    assert "aggregate" in proc.stdout


def test_bad_config_key_stops_before_any_job():
    proc = snakemake("-n", "--configfile", "config/smoke.yaml", "--config", "bogus_key=1", check=False)
    assert proc.returncode != 0
    assert "key (top level): Additional properties are not allowed ('bogus_key' was unexpected)" in proc.stdout + proc.stderr


# `smoke` (tests/conftest.py): the smoke study, run once per session and shared with tests/test_report.py.


def test_table_is_computed_from_judgment_and_generation_files(smoke):
    from evals.protocols.arena_hard_protocol import judgments_to_battles

    table = pd.read_csv(smoke / "tables" / "methods.csv")
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    assert list(table["Model"]) == models(config)
    items = {it["turns"][0]: it for it in read_jsonl(smoke / "data" / "eval_items.jsonl") if it["suite"] == "alpaca_eval"}
    for _, row in table.iterrows():
        model = row["Model"]
        judgments = read_jsonl(smoke / "judgments" / model / "alpaca_eval.jsonl")
        prefs = [j["preference"] for j in judgments if j["preference"] is not None]
        assert row["AlpacaEval WR (%)"] == pytest.approx(100 * sum(p - 1 for p in prefs) / len(prefs))
        generations = read_json(smoke / "generations" / model / "alpaca_eval.json")
        correct = [is_correct(g["output"], items[g["instruction"]]["golds"][0]) for g in generations]
        assert row["Gold accuracy (%)"] == pytest.approx(100 * sum(correct) / len(correct))
        assert row["Mean length (chars)"] == pytest.approx(sum(len(g["output"]) for g in generations) / len(generations))
        ratings = [j["score"] for j in read_jsonl(smoke / "judgments" / model / "mt_bench.jsonl") if j["score"] != -1]
        assert row["MT-Bench"] == pytest.approx(sum(ratings) / len(ratings))
        # Bradley-Terry against the baseline alone: the win rate is the mean battle outcome (strong verdicts x3).
        battles = judgments_to_battles(read_jsonl(smoke / "judgments" / model / "arena_hard.jsonl"))
        assert row["Arena-Hard (%)"] == pytest.approx(100 * battles["scores"].mean(), abs=1e-4)
        assert row["Arena-Hard (%) CI low"] <= row["Arena-Hard (%)"] <= row["Arena-Hard (%) CI high"]
        lm_eval = read_json(smoke / "scores" / model / "academic.lm_eval_results.json")["results"]
        for task in config["evals"]["academic"]["tasks"]:
            key = "exact_match,flexible-extract" if task["name"] == "micro_arith_gen" else "acc,none"
            assert row[task["title"]] == pytest.approx(100 * lm_eval[task["name"]][key])
    markdown = (smoke / "tables" / "methods.md").read_text()
    assert "AlpacaEval WR (%)" in markdown and "length_controlled_minimal" in markdown
    assert "LC AlpacaEval-2" in (smoke / "tables" / "table4.md").read_text()


def test_every_method_descends_from_the_one_sft_checkpoint(smoke):
    sft = read_provenance(smoke / "models" / "sft")
    assert sft["parents"]["policy"]["checkpoint_hash"] == read_provenance(smoke / "models" / "base")["checkpoint_hash"]
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    for method in models(config)[1:]:
        provenance = read_provenance(smoke / "models" / method)
        assert provenance["parents"]["policy"]["checkpoint_hash"] == sft["checkpoint_hash"]
        assert provenance["tokens_seen"] > 0 and provenance["wall_time_s"] > 0


def test_sft_solves_a_clearly_non_trivial_share(smoke):
    score = read_json(smoke / "scores" / "sft" / "alpaca_eval.json")["metrics"]
    accuracy, trivial = score["gold_accuracy"], score["trivial_baseline_accuracy"]["value"]
    # at least 1.5x the best constant answer per family, and two standard errors above it
    assert accuracy["value"] > 1.5 * trivial and accuracy["value"] - 2 * accuracy["stderr"] > trivial


def test_rerun_has_nothing_to_do(smoke):
    proc = snakemake("-n", "--configfile", "config/smoke.yaml", "--config", f"study={STUDY}")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_corrupt_row_stops_the_rule_with_one_clear_line(smoke):
    judgments = smoke / "judgments" / "sft" / "alpaca_eval.jsonl"
    original = judgments.read_text()
    lines = original.splitlines(keepends=True)
    try:
        judgments.write_text("".join(lines[:2]) + '{"instruction": "cut off\n' + "".join(lines[3:]))
        proc = snakemake("--cores", "1", "--configfile", "config/smoke.yaml", "--config", f"study={STUDY}",
                         "--forcerun", "score", f"results/{STUDY}/scores/sft/alpaca_eval.json", check=False)
        assert proc.returncode != 0
        log = (smoke / "logs" / "score" / "sft" / "alpaca_eval.log").read_text().strip()
        assert len(log.splitlines()) == 1
        assert log.startswith(f"error: {judgments.relative_to(ROOT)}, row 3: not valid JSON (")
    finally:
        judgments.write_text(original)


def test_length_analysis_is_computed_from_iteration_and_score_files(smoke):
    import numpy as np

    analysis = read_json(smoke / "tables" / "length_analysis.json")
    for row in analysis["iterations"]:
        stats = read_json(smoke / "iterative" / row["model"] / f"iter{row['iteration']}" / "stats.json")
        assert row["mean_length"] == stats["mean_length_chars"]
    rm = analysis["reward_model"]
    samples = read_jsonl(ROOT / rm["samples"])
    rewards = [r for row in samples for r in row["rewards"]]
    lengths = [len(c) for row in samples for c in row["completions"]]
    assert rm["pearson_reward_length"] == pytest.approx(np.corrcoef(rewards, lengths)[0, 1])
    table6 = (smoke / "tables" / "table6.md").read_text()
    assert "iterative_dpo_concise_l0.03" in table6 and "Len. Pen." in table6
