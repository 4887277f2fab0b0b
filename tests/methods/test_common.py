"""The trainer workarounds of methods/common.py, measured through real TRL trainers on the tiny fixtures: after one
epoch, tokens_seen is exactly the number of non-padding tokens of the sequences trained on (paired batches:
chosen + rejected; unpaired: each completion), and the experimental CPO-style trainers see no BOS token; the reward
scorer keeps each reward at its own completion."""

import pytest

from methods.train import run
from pipeline.io import read_jsonl
from tiny_setup import block

MAX_LENGTH = 128  # the tiny model's positions; longer sequences are truncated to it by the trainers


def sequence_tokens(tokenizer, prompt: list[dict], completion: list[dict]) -> int:
    """Tokens of prompt + completion rendered with the chat template (no BOS: the template has none)."""
    ids = tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)["input_ids"]
    return min(len(ids), MAX_LENGTH)


def epoch(rows: list, batch: int) -> dict:
    assert len(rows) % batch == 0
    return {"max_steps": len(rows) // batch, "max_length": MAX_LENGTH, "learning_rate": 1e-4}


def test_paired_tokens_seen_counts_chosen_and_rejected_without_bos(world, sft, tmp_path):
    """Guards against paired (chosen_/rejected_) batches counted as 0 by Trainer, and against CPOTrainer's
    prepended BOS, which would add 2 tokens per pair that no other stage of ours uses."""
    from transformers import AutoTokenizer

    rows = read_jsonl(world["prefs"])
    tokenizer = AutoTokenizer.from_pretrained(sft)
    record = run("simpo", block({**epoch(rows, 8), "beta": 2.0, "simpo_gamma": 0.5}, module="simpo"), seed=0,
                 policy=sft, reference=sft, data={"prefs": world["prefs"]}, reward_model=None, out_dir=tmp_path / "m")
    expected = sum(sequence_tokens(tokenizer, r["prompt"], r["chosen"]) + sequence_tokens(tokenizer, r["prompt"],
                                                                                          r["rejected"]) for r in rows)
    assert record["tokens_seen"] == expected


def test_unpaired_tokens_seen_counts_each_completion_without_padding(world, sft, tmp_path):
    """Guards against counting the padding of every KTO batch (or its KL batch, not trained on) as tokens seen."""
    from transformers import AutoTokenizer

    rows = read_jsonl(world["kto"])
    tokenizer = AutoTokenizer.from_pretrained(sft)
    record = run("kto", block({**epoch(rows, 8), "beta": 0.1}, module="kto"), seed=0, policy=sft, reference=sft,
                 data={"kto": world["kto"]}, reward_model=None, out_dir=tmp_path / "m")
    assert record["tokens_seen"] == sum(sequence_tokens(tokenizer, r["prompt"], r["completion"]) for r in rows)


def test_reward_scorer_returns_rewards_in_the_given_order(reward_model):
    """The scorer batches completions by length; each reward must still land at its own completion's index: the
    batched scores equal one-at-a-time scores (no padding) of the same completions."""
    from methods.reward_model import RewardScorer

    prompt = [{"role": "user", "content": "Add 2 and 3."}]
    completions = ["5", "The answer is 5. Glad to help, have a nice day!", "6", "", "Sure! 2 plus 3 is 5."] * 3
    batched = RewardScorer(reward_model, batch_size=4).score([prompt] * len(completions), completions)
    one_by_one = RewardScorer(reward_model, batch_size=1).score([prompt] * len(completions), completions)
    assert len(set(round(r, 4) for r in one_by_one)) > 1          # the completions really score differently
    assert batched == pytest.approx(one_by_one, abs=1e-5)
