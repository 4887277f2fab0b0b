"""Judge stage, one (model, suite) per process: the suite renders its upstream judge prompts, the configured judge
answers them (the HTTP judge from its on-disk cache first: a rerun makes no call), and one JSONL row per judgment is
written in the upstream annotation format plus our bookkeeping. No torch, no model: judging runs on CPU nodes.

    python -m evals.judge --suite mt_bench --model dpo --judge-name oracle --judge-json '{"kind": "oracle", ...}' \\
        --world-json W --generations G --data mt_bench_questions=Q --items I --cache C --out O
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from evals.judges.base import Judge, JudgeRequest
from evals.registry import ChatSuite, get_suite
from evals.suites import GOLD, parse_data_args
from pipeline.cli import entry_point
from pipeline.io import InputError, write_jsonl
from pipeline.logs import get_logger

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


# What OpenAI-compatible APIs answer for a model they do not serve (OpenAI: 404 code model_not_found, also for
# retired models; vLLM: 404 "The model `x` does not exist."). Matched on the error body, so that a 404 from a wrong
# URL is not mistaken for it.
UNKNOWN_MODEL_MARKERS = ("model_not_found", "does not exist", "deprecated", "decommissioned", "retired")


def is_unknown_model(err: BaseException) -> bool:
    """Whether a judge error is the API saying the judge model is unknown or retired."""
    from evals.judges.http import JudgeHTTPError

    return (isinstance(err, JudgeHTTPError) and err.status in (400, 404)
            and any(marker in err.body.lower() for marker in UNKNOWN_MODEL_MARKERS))


def with_oracle(request: JudgeRequest, fmt: str, gold: str | None, answers: list[str]) -> JudgeRequest:
    """Attach what the oracle judge reads (never sent over HTTP): the gold answer and the answers as shown."""
    return dataclasses.replace(request, oracle={"format": fmt, "gold": gold, "answers": answers})


class CountingJudge:
    """Wraps a judge to count its calls and cache hits for the log line."""

    def __init__(self, judge: Judge):
        self.inner, self.judge_id, self.sampling = judge, judge.judge_id, judge.sampling
        self.requests = self.cache_hits = 0

    def judge(self, requests):
        responses = self.inner.judge(requests)
        self.requests += len(responses)
        self.cache_hits += sum(r.cache_hit for r in responses)
        return responses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--judge-name", required=True)
    parser.add_argument("--judge-json", required=True)
    parser.add_argument("--world-json", default="null")
    parser.add_argument("--settings-json", default="{}", help="the suite's block of the config's `evals`")
    parser.add_argument("--generations", type=Path, required=True)
    parser.add_argument("--data", nargs="*", default=[], metavar="KIND=PATH")
    parser.add_argument("--items", type=Path, help="the micro world's gold items (eval_items.jsonl)")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    suite = get_suite(args.suite)
    if not isinstance(suite, ChatSuite) or not suite.is_judged:
        raise InputError(f"--suite {args.suite}: this suite has no judge")
    data = parse_data_args(args.data)
    if args.items is not None:
        data[GOLD] = args.items
    judge = CountingJudge(make_judge(args.judge_name, json.loads(args.judge_json), cache_path=args.cache,
                                     world=json.loads(args.world_json)))
    started = time.perf_counter()
    try:
        rows = suite.judge(judge, args.model, args.generations, data, json.loads(args.settings_json))
    except Exception as err:
        block = json.loads(args.judge_json)
        if is_unknown_model(err):
            raise InputError(
                f"config key judges.{args.judge_name}.model: the judge API {block.get('base_url')} answers that model "
                f"{block.get('model')!r} is unknown or retired (HTTP {err.status}); choose a current judge (README, "
                f"Evaluation suites); numbers from another judge are not comparable with the published ones") from None
        raise
    write_jsonl(args.out, rows, schema=suite.judgment_schema)
    log.info("%s/%s: %d judge requests by %s, %d cache hits, %d new calls, %.1f s", args.suite, args.model,
             judge.requests, judge.judge_id, judge.cache_hits, judge.requests - judge.cache_hits,
             time.perf_counter() - started)


if __name__ == "__main__":
    entry_point(main)
