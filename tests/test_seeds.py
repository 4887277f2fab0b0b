"""The method stage runs once per seed (`seeds:`), with a real {seed} wildcard: dry runs of the smoke config with
two seeds. Guards against seeds that exist only in the tables (every seed training the same run, or a seed reaching
the model's name but not its trainer or its generation)."""

from __future__ import annotations

import re

import yaml

from pipeline.config import expand_sweeps, seeded_name
from tests.test_dag import ROOT, job_counts, snakemake


def test_two_seeds_train_sample_and_generate_each_variant_twice_with_its_own_seed():
    proc = snakemake("-n", "-F", "-p", "--configfile", "config/smoke.yaml", "--config", "seeds=[0,1]")
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    methods = expand_sweeps(config["methods"])
    counts = job_counts(proc.stdout)
    assert counts["generate"] == 1 + 2 * len(methods)                      # sft once, every variant per seed
    assert counts["train"] + counts["inference_rule"] + counts["iterative_final"] == 2 * len(methods)
    shells = [line for line in proc.stdout.splitlines() if "methods.train --method dpo " in line]
    assert len(shells) == 2
    for seed in (0, 1):
        model = seeded_name("dpo", seed)
        assert any(f"--seed {seed} " in s and f"models/{model} " in s + " " for s in shells)
        generate = [line for line in proc.stdout.splitlines() if "evals.generate" in line and f"--model {model} " in line]
        assert len(generate) == 1 and f"--seed {seed} " in generate[0]
    iterative = [line for line in proc.stdout.splitlines() if "iterative_dpo iteration --method iterative_dpo " in line]
    assert {re.search(r"--seed (\d+) ", line)[1] for line in iterative} == {"0", "1"}
    assert any("--samples-dir results/" in line and "iterative/iterative_dpo-s1/iter2 " in line for line in iterative)
    sft_generate = [line for line in proc.stdout.splitlines() if "evals.generate" in line and "--model sft " in line]
    assert len(sft_generate) == 1 and f"--seed {config['seed']} " in sft_generate[0]   # the shared seed
