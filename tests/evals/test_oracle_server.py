"""The loopback oracle judge server (evals/judges/oracle_server.py) behind the real HTTP judge and the real upstream
prompts: guards against a server that misreads which benchmark a prompt is, judges against the wrong gold item, or
answers logprobs in a shape OpenAI does not use."""

import math

import pytest
import requests

from evals.judges.http import HTTPJudge
from evals.judges.oracle import OracleJudge
from evals.judges.oracle_server import OracleServer
from evals.protocols import alpaca_eval_protocol as ae
from evals.protocols import arena_hard_protocol as ah
from evals.protocols import mt_bench_protocol as mb

JUDGE = {"temperature": 0.2, "verbosity_bias": 1.0, "length_scale": 50, "seed": 0,
         "gold_reward": {"length_penalty": 0.2, "length_scale": 50}}
ITEMS = [{"item_id": "a-0", "family": "add", "turns": ["What is 2 + 3?"], "golds": ["5"], "suite": "alpaca_eval"},
         {"item_id": "h-0", "family": "sort", "turns": ["Sort these digits: 3 1 2"], "golds": ["1 2 3"],
          "suite": "arena_hard"},
         {"item_id": "m-0", "family": "add", "turns": ["What is 4 + 4?", "Now add 10 to that number."],
          "golds": ["8", "18"], "suite": "mt_bench", "category": "math"}]


@pytest.fixture(scope="module")
def server():
    with OracleServer(JUDGE, ITEMS) as srv:
        yield srv


def oracle():
    settings = {k: v for k, v in JUDGE.items() if k != "gold_reward"}
    return OracleJudge(**settings, gold_reward=JUDGE["gold_reward"])


def ask(server, messages, **extra):
    reply = requests.post(f"{server.base_url}/chat/completions", json={"model": "gpt-4", "messages": messages, **extra},
                          timeout=10)
    return reply.status_code, reply.json()


def test_alpaca_eval_prompt_gets_the_oracle_verdict_and_openai_logprobs(server):
    request = ae.render_judge_request("What is 2 + 3?", "The answer is 5.", "Sure! The answer is 6. Glad to help.",
                                      swapped=False, key="k")
    status, body = ask(server, request.messages, max_tokens=1, logprobs=True, top_logprobs=5)
    assert status == 200
    text = body["choices"][0]["message"]["content"]
    first = body["choices"][0]["logprobs"]["content"][0]
    probabilities = {t["token"]: math.exp(t["logprob"]) for t in first["top_logprobs"]}
    assert set(probabilities) == {"m", "M"} and sum(probabilities.values()) == pytest.approx(1.0)
    # the correct concise answer (shown first, "m") is the oracle's favourite, as its own probability says
    assert probabilities["m"] == pytest.approx(oracle().p_first_better("The answer is 5.",
                                                                       "Sure! The answer is 6. Glad to help.", "5"))
    assert probabilities["m"] > 0.9 and first["token"] == text and text in ("m", "M")


def test_arena_hard_games_and_mt_bench_turns_parse_with_upstream_parsers(server):
    question = {"uid": "h-0", "category": "hard_prompt", "prompt": "Sort these digits: 3 1 2"}
    good = {"model": "sft", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": {"answer": "1 2 3"}}]}
    bad = {"model": "base", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": {"answer": "3 2 1"}}]}
    games = ah.render_games(question, good, bad, key="g")
    verdicts = [ah.parse_verdict(ask(server, g.messages)[1]["choices"][0]["message"]["content"]) for g in games]
    # game 1 shows the baseline (wrong) as A, game 2 the model (right) as A: the right answer wins both orders
    assert verdicts[0] in ("B>A", "B>>A") and verdicts[1] in ("A>B", "A>>B")
    mt_question = {"question_id": 1, "category": "math", "turns": ITEMS[2]["turns"]}
    reference = {"question_id": 1, "model_id": "gpt-4", "choices": [{"index": 0, "turns": ITEMS[2]["golds"]}]}
    answer = {"question_id": 1, "model_id": "sft", "choices": [{"index": 0, "turns": ["8", "The answer is 99."]}]}
    scores = []
    for turn in (1, 2):   # the reference as FastChat reads it: a row of reference_answer/gpt-4.jsonl
        request = mb.render_single_judge_request(mt_question, answer, turn, key=f"t{turn}", reference=reference)
        scores.append(mb.parse_rating(ask(server, request.messages)[1]["choices"][0]["message"]["content"]))
    assert scores[0] > scores[1]  # turn 1 is right ("8"), turn 2 wrong against its own gold ("18")


def test_http_judge_calls_are_counted_and_unknown_prompts_refused(server):
    before = requests.get(server.base_url.replace("/v1", "/stats"), timeout=10).json()
    judge = HTTPJudge("gpt-4", server.base_url, progress=False, max_requests_per_second=None)
    request = ae.render_judge_request("What is 2 + 3?", "5", "6", swapped=True, key="k")
    judge.judge([request, request])
    stats = requests.get(server.base_url.replace("/v1", "/stats"), timeout=10).json()
    assert stats["calls"] - before["calls"] == 2 and stats["distinct_requests"] - before["distinct_requests"] == 1
    status, body = ask(server, [{"role": "user", "content": "Tell me a joke."}])
    assert status == 400 and "no AlpacaEval, Arena-Hard or MT-Bench judge prompt" in body["error"]["message"]
    request = ae.render_judge_request("What is 9 + 9?", "18", "17", swapped=False, key="k")
    status, body = ask(server, request.messages)
    assert status == 400 and "no gold item" in body["error"]["message"]


def test_a_deferred_arena_hard_verdict_comes_with_v01s_second_call():
    """Bug guarded: the rehearsal never exercising arena-hard-auto v0.1's "continue your judgment" call. A server that
    defers every verdict answers the first call without one (v0.1's parser finds none, so follow_up asks again, as
    upstream's gen_judgment does) and the continuation with the oracle's verdict; stats count the deferral."""
    from evals.judges.base import JudgeResponse

    question = {"uid": "h-0", "category": "hard_prompt", "prompt": "Sort these digits: 3 1 2"}
    good = {"model": "sft", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": {"answer": "1 2 3"}}]}
    bad = {"model": "base", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": {"answer": "3 2 1"}}]}
    version = ah.VERSIONS["v0.1"]
    game = ah.render_games(question, good, bad, key="g", version=version)[0]
    with OracleServer(JUDGE, ITEMS, defer_verdict_share=1.0) as deferring:
        first = ask(deferring, game.messages)[1]["choices"][0]["message"]["content"]
        again = ah.follow_up(game, JudgeResponse(game.key, "gpt-4", "", first, 0.0, False), version)
        assert again is not None and again.messages[-1]["content"] == ah.CONTINUE_MESSAGE
        second = ask(deferring, again.messages)[1]["choices"][0]["message"]["content"]
        stats = requests.get(deferring.base_url.replace("/v1", "/stats"), timeout=10).json()
    assert ah.v01_get_score("\n" + first)[0] is None
    assert ah.v01_get_score("\n" + second)[0] in ("B>A", "B>>A")   # game 1: the baseline (wrong) is A
    assert stats["by_format"]["arena_hard_deferred"] == 1 and stats["calls"] == 2
