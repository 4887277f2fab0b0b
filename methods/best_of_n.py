"""Best-of-n (AlpacaFarm's and Gao et al. 2023's baseline): sample n answers from the SFT model and return the one the
reward model scores highest. There is no training: the method's "checkpoint" (models/<name>/) is the rule,
inference_rule.json naming this module's BestOfN wrapper, the SFT folder and the reward model's folder, with
provenance recording n, the sampling settings and both parents' hashes. Generation (evals/generate.py) loads the SFT
model through the configured backend and wraps it in BestOfN, so every chat suite and table evaluates best-of-n like
any other model. Harness suites (lm-eval log-likelihoods) see the SFT model itself: the rule only changes sampling.

Config block keys: n (an integer, or a list: one model per value, named <block>_<n>), sampling: {temperature,
top_p} of the n candidates (max_new_tokens is each suite's), reward_batch_size (throughput only).
"""

from __future__ import annotations

from typing import Any

from methods.registry import InferenceRule, TrainContext, register_config_check, register_method

SAMPLING_KEYS = ("temperature", "top_p")


@register_config_check("best_of_n")
def check_block(block: dict, where: str) -> None:
    n = block.get("n")
    values = n if isinstance(n, list) else [n]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(f"config key {where}.n: {n!r}; expected a positive integer or a list of them")
    sampling = block.get("sampling", {})
    if "temperature" not in sampling or set(sampling) - set(SAMPLING_KEYS):
        raise ValueError(f"config key {where}.sampling: {sampling!r}; expected temperature and optionally top_p")


@register_method("best_of_n", family="inference", data=(), needs_reward_model=True)
def build(ctx: TrainContext) -> InferenceRule:
    """The rule: n candidates per conversation at the block's sampling settings, the reward model's best returned."""
    from pipeline.io import InputError

    try:
        check_block(ctx.block, f"methods.{ctx.method}")
    except ValueError as err:
        raise InputError(str(err)) from None
    if isinstance(ctx.block["n"], list):
        raise InputError(f"methods.{ctx.method}.n: a list reaches a single model; the workflow expands a sweep "
                         f"into one model per n (pipeline.config.expand_sweeps)")
    settings = {"n": int(ctx.block["n"]), "sampling": {"top_p": 1.0, **ctx.block["sampling"]},
                "reward_batch_size": int(ctx.block.get("reward_batch_size", 64)), "seed": ctx.seed}
    return InferenceRule(wrapper="methods.best_of_n:BestOfN", settings=settings)


class BestOfN:
    """A generation backend (evals/backends.py) around another: each conversation is answered n times at the rule's
    temperature/top_p (the suite's max_new_tokens), the reward model scores every candidate, and the best is
    returned. ``records`` keeps every candidate and reward (evals/generate.py writes them beside the generations,
    pipeline.provenance.INFERENCE_TRACE)."""

    def __init__(self, inner, rule: dict[str, Any]):
        from methods.reward_model import RewardScorer

        self.inner, self.rule = inner, rule
        self.n = int(rule["settings"]["n"])
        self.sampling = dict(rule["settings"]["sampling"])
        self.scorer = RewardScorer(rule["reward_model"], batch_size=int(rule["settings"]["reward_batch_size"]))
        self.records: list[dict] = []

    def generate(self, conversations: list[list[dict]], **overrides) -> list[str]:
        settings = {**overrides, **self.sampling}          # the rule's sampling wins; max_new_tokens is the suite's
        candidates = self.inner.samples(conversations, self.n, **settings)
        rewards = self.scorer.score([c for c in conversations for _ in range(self.n)],
                                    [a for answers in candidates for a in answers])
        answers = []
        for i, conversation in enumerate(conversations):
            cands, scores = candidates[i], rewards[i * self.n:(i + 1) * self.n]
            best = max(range(self.n), key=scores.__getitem__)
            answers.append(cands[best])
            self.records.append({"conversation": conversation, "candidates": cands, "rewards": scores,
                                 "chosen": best, "sampling": settings})
        return answers

    def run_academic(self, *args, **kwargs) -> dict:
        """lm-eval scores log-likelihoods of the SFT model: best-of-n changes sampling only."""
        return self.inner.run_academic(*args, **kwargs)
