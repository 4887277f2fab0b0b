"""Score stage: one JSON per (model, suite) computed from the judgment file (and, in the micro world, from
the generations against the gold answers).

    python -m evals.score --suite alpaca_eval --model dpo --judgments J --generations G --items I \
        --world-json W --out results/micro/scores/dpo/alpaca_eval.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from pipeline.io import InputError, read_json, read_jsonl, write_json
from pipeline.logs import get_logger
from world.tasks import is_correct
from world.truth import GoldReward
from pipeline.cli import entry_point

log = get_logger("evals.score")


def metric(value: float, stderr: float | None = None, n: int | None = None, **extra) -> dict:
    return {"value": float(value), "stderr": None if stderr is None else float(stderr), "n": n, **extra}


def gold_metrics(answers: list[tuple[str, str, str]], gold_reward: GoldReward) -> dict:
    """Micro world only: gold accuracy and gold reward of (family, answer, gold) triples, overall and per family."""
    import numpy as np

    correct = np.array([is_correct(a, g) for _, a, g in answers], dtype=float)
    rewards = np.array([gold_reward(a, g) for _, a, g in answers])
    n = len(answers)
    out = {"gold_accuracy": metric(100 * correct.mean(), 100 * correct.std(ddof=1) / np.sqrt(n), n),
           "gold_reward": metric(rewards.mean(), rewards.std(ddof=1) / np.sqrt(n), n)}
    by_family = defaultdict(list)
    for (family, _, _), ok in zip(answers, correct):
        by_family[family].append(ok)
    for family, oks in sorted(by_family.items()):
        out[f"gold_accuracy_{family}"] = metric(100 * float(np.mean(oks)), None, len(oks))
    return out


def trivial_baseline_accuracy(items: list[dict]) -> float:
    """Accuracy (%) of the best constant answer per family: what a model that ignores the question can reach."""
    from collections import Counter

    by_family = defaultdict(list)
    for item in items:
        by_family[item["family"]].append(item["golds"][0])
    best = sum(Counter(golds).most_common(1)[0][1] for golds in by_family.values())
    return 100 * best / max(1, len(items))


def score_alpaca_eval(judgments: list[dict], generations: list[dict], items: list[dict], world: dict | None,
                      model: str) -> dict:
    from evals import alpaca_eval as ae

    wr = ae.win_rate([row["preference"] for row in judgments])
    metrics = {"win_rate": metric(wr["win_rate"], wr["standard_error"], wr["n_total"],
                                  n_wins=wr["n_wins"], n_draws=wr["n_draws"], n_unparsable=wr["n_unparsable"])}
    lengths = [len(row["output"]) for row in generations]
    if world is not None:
        by_instruction = {it["turns"][0]: it for it in items if it["suite"] == "alpaca_eval"}
        missing = [row["instruction"] for row in generations if row["instruction"] not in by_instruction]
        if missing:
            raise InputError(f"alpaca_eval generations of {model}: {len(missing)} instructions have no gold item, "
                             f"e.g. {missing[0][:80]!r}")
        triples = [(by_instruction[r["instruction"]]["family"], r["output"], by_instruction[r["instruction"]]["golds"][0])
                   for r in generations]
        metrics.update(gold_metrics(triples, GoldReward(**world["gold_reward"])))
        suite_items = [by_instruction[r["instruction"]] for r in generations]
        metrics["trivial_baseline_accuracy"] = metric(trivial_baseline_accuracy(suite_items), None, len(suite_items))
    return {"suite": "alpaca_eval", "model": model, "n": len(generations),
            "mean_length": sum(lengths) / max(1, len(lengths)), "metrics": metrics}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True, choices=["alpaca_eval"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--judgments", type=Path, required=True)
    parser.add_argument("--generations", type=Path, required=True)
    parser.add_argument("--items", type=Path, required=True)
    parser.add_argument("--world-json", default="null")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    score = score_alpaca_eval(read_jsonl(args.judgments, schema="alpaca_eval_judgment"),
                              read_json(args.generations, schema="alpaca_eval_outputs"),
                              read_jsonl(args.items, schema="item"), json.loads(args.world_json), args.model)
    write_json(args.out, score, schema="score")
    log.info("%s/%s: %s", args.suite, args.model,
             ", ".join(f"{k}={v['value']:.3g}" for k, v in score["metrics"].items() if not k.startswith("gold_accuracy_")))


if __name__ == "__main__":
    entry_point(main)
