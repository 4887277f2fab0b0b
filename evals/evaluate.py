"""Evaluation stage, one model per process: each suite of the given `evals` block, in its order, is judged if it is
a judged suite (evals/judge.py) and then scored (evals/score.py). One process per model instead of one per (model,
suite, stage): the interpreter start and the imports (AlpacaEval's alone is about 2 s) are paid once. No torch, no
model: this runs on the submit node (the real study's API judges need its internet).

    python -m evals.evaluate --model dpo --evals-json '{"alpaca_eval": {...}, ...}' \\
        --judges-json '{"oracle": {"kind": "oracle", ...}}' --world-json W \\
        --data alpaca_eval_baseline=results/micro/data/alpaca_eval_baseline.json ... --items I \\
        --generations-dir results/micro/generations/dpo --judge-cache results/micro/judge_cache \\
        --judgments-dir results/micro/judgments/dpo --scores-dir results/micro/scores/dpo

Files per suite: ``<judgments-dir>/<suite>.jsonl`` (judged suites), ``<scores-dir>/<suite>.json``, and for a harness
suite lm-eval's own results copied to ``<scores-dir>/<suite>.lm_eval_results.json``; the HTTP judge's cache is
``<judge-cache>/<judge>/<model>/<suite>.jsonl``. One log line per suite: judged, cached, unparsable, score written.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Mapping

from evals.judge import judge_suite
from evals.registry import get_suite
from evals.score import score_suite, summary, unparsable_share
from evals.suites import GOLD, parse_data_args
from pipeline.cli import entry_point
from pipeline.io import InputError, write_text
from pipeline.logs import get_logger

log = get_logger("evals.evaluate")

# lm-eval's own results JSON, which a harness suite's run leaves beside its generation file; kept beside the score.
HARNESS_RESULTS = "lm_eval_results.json"


def evaluate_suite(name: str, settings: Mapping[str, Any], *, model: str, judges: Mapping[str, dict],
                   world: dict | None, data: Mapping[str, Path], generations_dir: Path, judge_cache: Path,
                   judgments_dir: Path, scores_dir: Path) -> None:
    """Judge (if the suite is judged) and score one suite of ``model``, then log one line about it."""
    started = time.perf_counter()
    suite = get_suite(name)
    generations = generations_dir / suite.generation_file
    if not generations.is_file():
        raise InputError(f"{generations}: file not found")
    judgments, requests, cached = None, 0, 0
    if suite.is_judged:
        judge_name = settings["judge"]
        if judge_name not in judges:
            raise InputError(f"config key evals.{name}.judge: {judge_name!r} is not in the judges given")
        judgments = judgments_dir / f"{name}.jsonl"
        judge = judge_suite(suite, model, judge_name, judges[judge_name], world=world, generations=generations,
                            data=data, settings=settings, cache=judge_cache / judge_name / model / f"{name}.jsonl",
                            out=judgments)
        requests, cached = judge.requests, judge.cache_hits
    else:
        results = generations.parent / HARNESS_RESULTS
        if not results.is_file():
            raise InputError(f"{results}: file not found (the harness' own results of suite {name})")
        write_text(scores_dir / f"{name}.{HARNESS_RESULTS}", results.read_text(encoding="utf-8"))
    out = scores_dir / f"{name}.json"
    score = score_suite(suite, model, generations=generations, judgments=judgments, data=data, settings=settings,
                        world=world, out=out)
    _, unparsable, n = unparsable_share(score["metrics"])
    log.info("%s/%s: judged %d, cached %d, new calls %d, unparsable %d of %d, score written %s (%s), %.1f s",
             model, name, requests, cached, requests - cached, unparsable, n, out, summary(score),
             time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--evals-json", required=True, help="the config's `evals` block: every suite, in order")
    parser.add_argument("--judges-json", default="{}", help="the config's `judges` the judged suites name")
    parser.add_argument("--world-json", default="null")
    parser.add_argument("--data", nargs="*", default=[], metavar="KIND=PATH")
    parser.add_argument("--items", type=Path, help="the micro world's gold items (eval_items.jsonl)")
    parser.add_argument("--generations-dir", type=Path, required=True)
    parser.add_argument("--judge-cache", type=Path, required=True, help="the study's judge_cache folder")
    parser.add_argument("--judgments-dir", type=Path, required=True)
    parser.add_argument("--scores-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    data = parse_data_args(args.data)
    if args.items is not None:
        data[GOLD] = args.items
    judges, world = json.loads(args.judges_json), json.loads(args.world_json)
    for name, settings in json.loads(args.evals_json).items():
        evaluate_suite(name, settings, model=args.model, judges=judges, world=world, data=data,
                       generations_dir=args.generations_dir, judge_cache=args.judge_cache,
                       judgments_dir=args.judgments_dir, scores_dir=args.scores_dir)


if __name__ == "__main__":
    entry_point(main)
