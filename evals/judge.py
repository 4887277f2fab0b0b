"""Judging one (model, suite): the suite renders its upstream judge prompts, the configured judge answers them (the
HTTP judge from its on-disk cache first: a rerun makes no call), and one JSONL row per judgment is written in the
upstream annotation format plus our bookkeeping. No torch, no model: judging runs on CPU nodes. Called per suite by
the evaluation stage (evals/evaluate.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from evals.judges.base import Judge, JudgeRequest
from evals.registry import ChatSuite
from pipeline.io import InputError, write_jsonl


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



def judge_suite(suite: ChatSuite, model: str, judge_name: str, block: Mapping[str, Any], *, world: dict | None,
                generations: Path, data: Mapping[str, Path], settings: Mapping[str, Any], cache: Path,
                out: Path) -> CountingJudge:
    """Judge ``model``'s answers of ``suite`` with the judge ``judge_name`` (its config block ``block``; HTTP answers
    cached in ``cache``) and write the judgment file ``out``; returns the judge with its request and cache counts.
    A judge model the API answers as unknown or retired stops with one line naming the model and its config key."""
    judge = CountingJudge(make_judge(judge_name, dict(block), cache_path=cache, world=world))
    try:
        rows = suite.judge(judge, model, generations, data, settings)
    except Exception as err:
        if is_unknown_model(err):
            raise InputError(
                f"config key judges.{judge_name}.model: the judge API {block.get('base_url')} answers that model "
                f"{block.get('model')!r} is unknown or retired (HTTP {err.status}); choose a current judge (README, "
                f"Evaluation suites); numbers from another judge are not comparable with the published ones") from None
        raise
    write_jsonl(out, rows, schema=suite.judgment_schema)
    return judge
