"""The micro world's oracle judge (the stand-in for GPT-4): Bradley-Terry on the gold reward plus its own
verbosity bias ``b_judge``, answering in each benchmark's upstream text format, deterministic given its seed
and the hashed inputs.

A request's ``oracle`` field carries what a human-free judge needs and an HTTP judge never sees:
``format`` ("pairwise_alpaca_eval", "pairwise_arena_hard" or "single_mt_bench"), ``gold`` (the gold answer of
the turn judged) and ``answers`` (the answers in the order shown to the judge: one for single grading).
"""

from __future__ import annotations

import math
import time

from evals.judges.base import JudgeRequest, JudgeResponse, prompt_hash, request_sampling
from world.truth import BiasedPreference, GoldReward, stable_uniform

# Arena-Hard verdict strength: |P(first better) - 0.5| above this is a strong verdict (>>), below TIE_BAND a tie.
STRONG_MARGIN = 0.4
TIE_BAND = 0.05


def _softplus(x: float) -> float:
    """log(1 + e^x) without overflow: log P = -softplus(-logit), log (1 - P) = -softplus(logit)."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


class OracleJudge:
    def __init__(self, *, temperature: float, verbosity_bias: float, length_scale: float, seed: int,
                 gold_reward: dict, judge_id: str = "oracle"):
        self.judge_id = judge_id
        self.preference = BiasedPreference(temperature, verbosity_bias, length_scale)
        self.gold_reward = GoldReward(**gold_reward)
        self.seed = seed
        self.sampling = {"temperature": temperature, "verbosity_bias": verbosity_bias,
                         "length_scale": length_scale, "seed": seed}

    def judge(self, requests: list[JudgeRequest]) -> list[JudgeResponse]:
        responses = []
        for request in requests:
            started = time.perf_counter()
            text = self.answer(request.oracle, request.key)
            sampling = request_sampling(self.sampling, request)
            top = self.top_logprobs(request.oracle) if sampling.get("logprobs") else None
            responses.append(JudgeResponse(request.key, self.judge_id,
                                           prompt_hash(self.judge_id, request.messages, sampling), text,
                                           time.perf_counter() - started, False, top))
        return responses

    def top_logprobs(self, oracle: dict) -> list[dict]:
        """AlpacaEval's logprob answer: the oracle knows its probability that the first shown output is better,
        so ``m`` (first) and ``M`` (second) carry log P and log (1 - P), in the OpenAI ``top_logprobs`` shape."""
        if oracle["format"] != "pairwise_alpaca_eval":
            raise ValueError(f"oracle judge: logprobs are only defined for AlpacaEval, not {oracle['format']!r}")
        first, second, gold = oracle["answers"][0], oracle["answers"][1], oracle["gold"]
        logit = self.preference.logit(self.gold_reward(first, gold), self.gold_reward(second, gold),
                                      len(first), len(second))
        return sorted([{"token": "m", "logprob": -_softplus(-logit)}, {"token": "M", "logprob": -_softplus(logit)}],
                      key=lambda t: -t["logprob"])

    def p_first_better(self, first: str, second: str, gold: str) -> float:
        return self.preference.probability(self.gold_reward(first, gold), self.gold_reward(second, gold),
                                           len(first), len(second))

    def answer(self, oracle: dict, key: str) -> str:
        fmt, gold, answers = oracle["format"], oracle["gold"], oracle["answers"]
        coin = stable_uniform(self.seed, key, *answers)
        if fmt == "pairwise_alpaca_eval":
            return "m" if coin < self.p_first_better(answers[0], answers[1], gold) else "M"
        if fmt == "pairwise_arena_hard":
            return f"My final verdict is: [[{self.arena_verdict(self.p_first_better(*answers, gold), coin)}]]"
        if fmt == "single_mt_bench":
            return f"Rating: [[{self.rating(answers[0], gold, coin)}]]"
        raise ValueError(f"oracle judge: unknown format {fmt!r}")

    @staticmethod
    def arena_verdict(p_first: float, coin: float) -> str:
        if abs(p_first - 0.5) < TIE_BAND:
            return "A=B"
        first_wins = coin < p_first
        strong = abs(p_first - 0.5) > STRONG_MARGIN
        if first_wins:
            return "A>>B" if strong else "A>B"
        return "B>>A" if strong else "B>A"

    def rating(self, answer: str, gold: str, coin: float) -> int:
        """1-10: a correct concise answer against the gold answer itself is the midpoint; noise from the coin."""
        logit = self.preference.logit(self.gold_reward(answer, gold), self.gold_reward(gold, gold) - 0.5,
                                      len(answer), len(gold))
        score = 1 + 9 / (1 + math.exp(-logit)) + (coin - 0.5)
        return int(min(10, max(1, round(score))))
