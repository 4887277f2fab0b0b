"""The evaluation stage's judging with the HTTP judge against the loopback fake OpenAI server: a completed
evaluation, rerun, makes no HTTP call (every answer comes from the on-disk cache) and writes the same judgments."""

from __future__ import annotations

import json

import pytest

from evals import evaluate
from evals.registry import get_suite
from pipeline.io import read_jsonl
from tests.evals.conftest import CHAT_SUITES
from tests.evals.fake_openai_server import FakeOpenAIServer

# The fake server's answer style per suite (its pairwise verdicts are Arena-Hard's; AlpacaEval's parser finds no
# m/M in them, which leaves those preferences unparsable but changes nothing about the calls).
STYLE = {"alpaca_eval": "pairwise", "mt_bench": "rating", "arena_hard": "pairwise"}


def judge_once(suite: str, server: FakeOpenAIServer, folder, eval_data, config, tmp_path) -> list[dict]:
    """One evaluation of ``suite`` (judging, then scoring: the fake's verdicts may all be unparsable, so any share is
    allowed), as the evaluate rule runs it; returns the judgment rows."""
    s = get_suite(suite)
    block = {"kind": "http", "model": "fake-judge", "base_url": server.base_url, "concurrency": 4,
             "max_retries": 0, "timeout_s": 10, "max_requests_per_second": 1000}
    settings = {**config["evals"][suite], "judge": "gpt", "max_unparsable_share": 1.0}
    evaluate.main([
        "--model", "verbose", "--evals-json", json.dumps({suite: settings}), "--judges-json", json.dumps({"gpt": block}),
        "--generations-dir", str(folder),
        "--data", *[f"{k}={eval_data[k]}" for k in (*s.judge_inputs(settings), *s.score_inputs(settings))],
        "--judge-cache", str(tmp_path / "judge_cache"), "--judgments-dir", str(tmp_path / "judgments"),
        "--scores-dir", str(tmp_path / "scores")])
    return read_jsonl(tmp_path / "judgments" / f"{suite}.jsonl", schema=s.judgment_schema)

def texts(suite: str, rows: list[dict]) -> list[tuple]:
    if suite == "alpaca_eval":
        return [(r["prompt_hash"], r["raw_completion"], r["cache_hit"]) for r in rows]
    if suite == "mt_bench":
        return [(r["prompt_hash"], r["judgment"], r["score"], r["cache_hit"]) for r in rows]
    return [(g["prompt_hash"], g["judgment"]["answer"], g["score"], g["cache_hit"]) for r in rows for g in r["games"]]


@pytest.mark.parametrize("suite", CHAT_SUITES)
def test_rerun_of_a_completed_evaluation_makes_no_http_call(suite, generate_for, eval_data, config, tmp_path):
    """Bug guarded: a rerun of a finished evaluation paying for judge answers it already received."""
    folder, _ = generate_for("verbose", "verbose")
    with FakeOpenAIServer(style=STYLE[suite]) as server:
        first = judge_once(suite, server, folder, eval_data, config, tmp_path)
        calls = server.calls
        assert calls == len(texts(suite, first)) > 0
        assert not any(hit for *_, hit in texts(suite, first))
        second = judge_once(suite, server, folder, eval_data, config, tmp_path)
        assert server.calls == calls  # the rerun made 0 HTTP calls
    assert all(hit for *_, hit in texts(suite, second))
    assert [t[:-1] for t in texts(suite, second)] == [t[:-1] for t in texts(suite, first)]


def test_retired_judge_model_stops_at_the_first_call_naming_model_and_key(generate_for, eval_data, config, tmp_path):
    """A judge model the API answers as unknown or retired (OpenAI's 404 model_not_found, e.g. gpt-4-0314 since
    2026-03) stops the evaluation at its first call with one line naming the model and the config key; the
    error is not cached, so a corrected config judges everything."""
    from pipeline.io import InputError

    folder, _ = generate_for("verbose", "verbose")
    with FakeOpenAIServer(style="rating") as server:
        server.retired_models.add("fake-judge")
        with pytest.raises(InputError) as err:
            judge_once("mt_bench", server, folder, eval_data, config, tmp_path)
        n_requests = 2 * len(read_jsonl(eval_data["mt_bench_questions"]))
        # the first 404 aborts the batch: only calls already in flight or just starting (concurrency 4) follow it
        assert server.calls <= 8 < n_requests
    message = str(err.value)
    assert "\n" not in message and "config key judges.gpt.model" in message and "'fake-judge'" in message
    assert "unknown or retired (HTTP 404)" in message
    cache = tmp_path / "judge_cache" / "gpt" / "verbose" / "mt_bench.jsonl"
    assert not cache.exists() or cache.read_text() == ""
