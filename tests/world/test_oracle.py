"""The oracle judge answers in the upstream formats, deterministically, with the verbosity bias it is given."""

import re

from evals.judges.base import JudgeRequest
from evals.judges.oracle import OracleJudge

GOLD = {"length_penalty": 0.2, "length_scale": 50}
VERBOSE = "Sure! Let me think about this carefully. The answer is 68. I hope this helps! Have a nice day!"


def oracle(bias):
    return OracleJudge(temperature=0.2, verbosity_bias=bias, length_scale=50, seed=0, gold_reward=GOLD)


def alpaca(first, second, key):
    return JudgeRequest(key, [{"role": "user", "content": key}],
                        {"format": "pairwise_alpaca_eval", "gold": "68", "answers": [first, second]})


def first_wins(judge, first, second, n=200):
    texts = [r.text for r in judge.judge([alpaca(first, second, f"k{i}") for i in range(n)])]
    assert set(texts) <= {"m", "M"}
    return texts.count("m") / n


def test_alpaca_format_is_deterministic():
    judge = oracle(1.0)
    requests = [alpaca(VERBOSE, "68", f"k{i}") for i in range(20)]
    assert [r.text for r in judge.judge(requests)] == [r.text for r in judge.judge(requests)]


def test_verbosity_bias_sets_how_often_the_longer_correct_answer_wins():
    assert first_wins(oracle(0.0), VERBOSE, "68") < 0.2       # truth: concise is better
    assert first_wins(oracle(3.0), VERBOSE, "68") > 0.65      # p = sigmoid(-1.8 + 3 tanh(1.8)) = 0.74
    assert first_wins(oracle(3.0), "67", "68") < 0.1          # but not a wrong answer of equal length


def test_arena_and_mt_bench_formats():
    judge = oracle(0.0)
    arena = judge.judge([JudgeRequest("a", [], {"format": "pairwise_arena_hard", "gold": "68", "answers": ["68", "12"]})])
    assert re.fullmatch(r"My final verdict is: \[\[(A>>B|A>B)\]\]", arena[0].text)
    good = judge.judge([JudgeRequest("g", [], {"format": "single_mt_bench", "gold": "68", "answers": ["68"]})])
    bad = judge.judge([JudgeRequest("b", [], {"format": "single_mt_bench", "gold": "68", "answers": ["I cannot tell."]})])
    rating = lambda r: int(re.fullmatch(r"Rating: \[\[(\d+)\]\]", r[0].text).group(1))
    assert rating(good) > rating(bad)
