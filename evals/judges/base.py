"""The one judge interface: an HTTP chat judge (any OpenAI-compatible API) and the micro world's oracle.

A suite renders its upstream judge prompt into chat ``messages``; a judge returns the raw text; the suite
parses that text with the upstream parser. The oracle judge additionally reads ``oracle`` (the gold item and
the answers being judged), which is never sent over HTTP.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class JudgeRequest:
    """One judge call. ``key`` names the item (e.g. ``alpaca_eval/17``) for logs and judgment rows."""

    key: str
    messages: list[dict[str, str]]
    oracle: dict[str, Any] = field(default_factory=dict, compare=False)
    # The protocol's own sampling parameters (e.g. AlpacaEval's max_tokens 1, logprobs, top_logprobs 5), over the
    # judge's configured ones; part of the cache key.
    sampling: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JudgeResponse:
    """What a judge said about one request, plus the bookkeeping every judgment row records."""

    key: str
    judge_id: str
    prompt_hash: str
    text: str
    latency_s: float
    cache_hit: bool
    # When the request asked for ``logprobs``: the first completion token's ``top_logprobs`` as the OpenAI API
    # returns them (``[{"token", "logprob"}, ...]``); None otherwise.
    top_logprobs: list[dict[str, Any]] | None = None


class Judge(Protocol):
    """Anything that turns chat requests into raw judge texts, in request order."""

    judge_id: str
    sampling: dict[str, Any]

    def judge(self, requests: list[JudgeRequest]) -> list[JudgeResponse]: ...


def request_sampling(judge_sampling: dict[str, Any], request: JudgeRequest) -> dict[str, Any]:
    """The sampling parameters of one call: the judge's, overridden by the protocol's (``request.sampling``)."""
    return {**judge_sampling, **request.sampling}


def prompt_hash(judge_id: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> str:
    """Cache key of one call: judge model + rendered prompt + sampling parameters."""
    blob = json.dumps({"judge": judge_id, "messages": messages, "sampling": sampling}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
