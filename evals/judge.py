"""Judge stage: render each suite's upstream judge prompts, call the configured judge (cached), and write one
JSONL row per judge call in the upstream annotation format plus our bookkeeping.

    python -m evals.judge --suite alpaca_eval --model dpo --judge-json '{"kind": "oracle", ...}' \
        --generations G --baseline B --items I --world-json W --cache C --out O
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from evals.judges.base import Judge, JudgeRequest
from pipeline.io import InputError, read_json, read_jsonl, write_jsonl
from pipeline.logs import get_logger
from pipeline.cli import entry_point

log = get_logger("evals.judge")


def make_judge(name: str, block: dict, *, cache_path: Path, world: dict | None) -> Judge:
    """A judge from its config block: the micro world's oracle or an OpenAI-compatible HTTP endpoint."""
    if block["kind"] == "oracle":
        from evals.judges.oracle import OracleJudge

        if world is None:
            raise InputError(f"config key judges.{name}: the oracle judge needs the micro world (config key world)")
        settings = {k: v for k, v in block.items() if k != "kind"}
        return OracleJudge(**settings, gold_reward=world["gold_reward"], judge_id=name)
    from evals.judges.cache import JudgeCache
    from evals.judges.http import HTTPJudge

    settings = {k: v for k, v in block.items() if k not in ("kind", "model")}
    return HTTPJudge(block["model"], cache=JudgeCache(cache_path), **settings)


def with_oracle(request: JudgeRequest, fmt: str, gold: str | None, answers: list[str]) -> JudgeRequest:
    """Attach what the oracle judge reads (never sent over HTTP): the gold answer and the answers as shown."""
    return dataclasses.replace(request, oracle={"format": fmt, "gold": gold, "answers": answers})


def judge_alpaca_eval(judge: Judge, model: str, generations: list[dict], baseline: list[dict],
                      gold_by_instruction: dict[str, str]) -> list[dict]:
    from evals import alpaca_eval as ae

    base_by_instruction = {row["instruction"]: row for row in baseline}
    requests, pairs = [], []
    for i, row in enumerate(generations):
        base = base_by_instruction.get(row["instruction"])
        if base is None:
            raise InputError(f"alpaca_eval generations of {model}, row {i + 1}: instruction not in the baseline: "
                             f"{row['instruction'][:80]!r}")
        swapped = ae.is_switched(row["instruction"])
        request = ae.render_judge_request(row["instruction"], base["output"], row["output"], swapped,
                                          key=f"alpaca_eval/{model}/{i}")
        shown = [row["output"], base["output"]] if swapped else [base["output"], row["output"]]
        requests.append(with_oracle(request, "pairwise_alpaca_eval", gold_by_instruction.get(row["instruction"]),
                                    shown))
        pairs.append((row, base, swapped))
    responses = judge.judge(requests)
    return [ae.annotation_record(row["instruction"], base["output"], row["output"], base["generator"],
                                 row["generator"], swapped, response)
            for (row, base, swapped), response in zip(pairs, responses)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True, choices=["alpaca_eval"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--judge-name", required=True)
    parser.add_argument("--judge-json", required=True)
    parser.add_argument("--world-json", default="null")
    parser.add_argument("--generations", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--items", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    judge = make_judge(args.judge_name, json.loads(args.judge_json), cache_path=args.cache,
                       world=json.loads(args.world_json))
    items = read_jsonl(args.items, schema="item")
    gold = {item["turns"][0]: item["golds"][0] for item in items if item["suite"] == args.suite}
    rows = judge_alpaca_eval(judge, args.model, read_json(args.generations, schema="alpaca_eval_outputs"),
                             read_json(args.baseline, schema="alpaca_eval_outputs"), gold)
    write_jsonl(args.out, rows, schema="alpaca_eval_judgment")
    log.info("%s/%s: %d judgments by %s, %d cache hits", args.suite, args.model, len(rows), judge.judge_id,
             sum(r["cache_hit"] for r in rows))


if __name__ == "__main__":
    entry_point(main)
