"""Faults in the training stages that must stop with one line instead of silently changing the numbers."""

from __future__ import annotations

import pytest

from pipeline.io import InputError


def test_nan_reward_stops_scoring_naming_the_reward_model(reward_model, world, tmp_path):
    """Bug guarded: a NaN reward (a diverged or corrupt reward model) silently dropped or kept iterative DPO's
    best-vs-worst pairs (NaN compares false with everything) and poisoned PPO/GRPO advantages."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from methods.reward_model import RewardScorer
    from pipeline.io import read_jsonl

    model = AutoModelForSequenceClassification.from_pretrained(reward_model)
    with torch.no_grad():
        model.score.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(reward_model).save_pretrained(tmp_path)
    prompts = [r["prompt"] for r in read_jsonl(world["online_prompts"])][:2]
    assert all(x == x for x in RewardScorer(reward_model).score(prompts, ["5", "6"]))  # the intact model is fine
    with pytest.raises(InputError, match=rf"reward model {tmp_path}: reward nan for completion 0 \('5'\); expected a "
                                         r"finite number"):
        RewardScorer(tmp_path).score(prompts, ["5", "6"])
