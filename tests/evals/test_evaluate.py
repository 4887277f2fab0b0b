"""The evaluation stage (python -m evals.evaluate, one process per model) on the micro suites: every judgment and
score file of one model in one process, one log line per suite, and no torch in that process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from evals.registry import get_suite
from pipeline.io import read_json, validate, write_json
from tests.evals.conftest import CHAT_SUITES, ROOT

# academic.json and lm-eval's own results as the generation stage leaves them (a harness run needs a model and torch)
ACADEMIC = {"suite": "academic", "version": "2", "model": "concise", "lm_eval_version": "0.4", "limit": None,
            "tasks": {"micro_arith_gen": {"metric": "exact_match", "filter": "none", "value": 0.5, "stderr": 0.1,
                                          "n": 4, "num_fewshot": 0, "mean_length": 3.0},
                      "micro_choice_mc": {"metric": "acc", "filter": "none", "value": 0.75, "stderr": 0.2, "n": 4,
                                          "num_fewshot": 0}}}
LM_EVAL_RESULTS = {"results": {"micro_arith_gen": {"exact_match,none": 0.5}}, "config": {"model": "m"}}


def test_one_process_evaluates_every_micro_suite_without_importing_torch(generate_for, eval_data, config, tmp_path):
    """Bugs guarded: the per-model evaluation leaving out a suite's judgment, score or lm-eval file, or pulling torch
    (seconds of import, and a GPU stack on the submit node) into a process that needs no model."""
    folder, _ = generate_for("concise", "concise")
    generations = tmp_path / "generations"
    for suite in CHAT_SUITES:
        name = get_suite(suite).generation_file
        (generations / name).parent.mkdir(parents=True, exist_ok=True)
        (generations / name).write_bytes((folder / name).read_bytes())
    academic = generations / get_suite("academic").generation_file
    write_json(academic, ACADEMIC, schema="academic_results")
    write_json(academic.parent / "lm_eval_results.json", LM_EVAL_RESULTS)
    evals = config["evals"]
    kinds = dict.fromkeys(k for name in CHAT_SUITES for k in (*get_suite(name).judge_inputs(evals[name]),
                                                               *get_suite(name).score_inputs(evals[name])))
    args = ["--model", "concise", "--evals-json", json.dumps(evals),
            "--judges-json", json.dumps({"oracle": config["judges"]["oracle"]}),
            "--world-json", json.dumps(config["world"]), "--generations-dir", str(generations),
            "--data", *[f"{k}={eval_data[k]}" for k in kinds], "--items", str(eval_data["eval_items"]),
            "--judge-cache", str(tmp_path / "judge_cache"), "--judgments-dir", str(tmp_path / "judgments"),
            "--scores-dir", str(tmp_path / "scores")]
    code = ("import sys; from evals.evaluate import main; main(sys.argv[1:]); "
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'lm_eval') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"
    for suite in evals:
        validate(read_json(tmp_path / "scores" / f"{suite}.json"), "score", suite)
    assert all((tmp_path / "judgments" / f"{suite}.jsonl").stat().st_size > 0 for suite in CHAT_SUITES)
    assert read_json(tmp_path / "scores" / "academic.lm_eval_results.json") == LM_EVAL_RESULTS
    lines = [line for line in proc.stderr.splitlines() if "evals.evaluate: concise/" in line]
    assert [line.split("concise/")[1].split(":")[0] for line in lines] == list(evals)
    assert all("judged " in line and " cached " in line and "unparsable " in line and "score written " in line
               for line in lines)
