"""GRPO (methods/grpo.py, TRL GRPOTrainer, the reward model as reward): the mean reward of sampled answers to the
training prompts rises; the gold checker is an optional second reward source."""

import pytest

from methods.grpo import check_block, reward_functions
from pipeline.provenance import read_provenance
from tiny_setup import block, train_online_and_measure

TRAINER = {"learning_rate": 3e-3, "max_steps": 8, "num_generations": 4, "max_completion_length": 24,
           "temperature": 1.0, "beta": 0.02, "loss_type": "dapo"}


def test_grpo_raises_the_mean_reward(world, sft, reward_model, tmp_path):
    config = block(TRAINER, batch=16, module="grpo")
    del config["trainer"]["max_length"]
    record, before, after = train_online_and_measure("grpo", config, world, sft, reward_model, tmp_path / "grpo")
    assert after > before + 0.2, (before, after)
    assert record["parents"]["reward_model"]["checkpoint_hash"] == read_provenance(reward_model)["checkpoint_hash"]
    assert record["tokens_seen"] > 0


def test_gold_reward_reads_the_gold_column(reward_model):
    functions, weights = reward_functions({"gold": 0.5}, reward_model)
    completions = [[{"role": "assistant", "content": "The answer is 12."}], [{"role": "assistant", "content": "13"}]]
    assert weights == [0.5]
    assert functions[0](prompts=[[], []], completions=completions, gold=["12", "12"]) == [1.0, 0.0]


@pytest.mark.parametrize("bad, message", [
    ({"reward": {"judge": 1.0}}, r"methods\.grpo\.reward: unknown sources \['judge'\]"),
    ({"effective_batch_size": 6}, r"methods\.grpo\.effective_batch_size: 6 is not a multiple of trainer\.num_generations \(4\)"),
])
def test_bad_blocks_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        check_block({**block(TRAINER, batch=16), **bad}, "methods.grpo")


def test_missing_eos_reward_source_penalises_truncated_completions():
    """GRPOTrainer passes each completion's ids up to its first EOS: one not ending in EOS was truncated and gets
    -1 (times the configured weight, the penalty); a finished one 0."""
    functions, weights = reward_functions({"missing_eos": 2.0}, None, eos_token_id=7)
    assert weights == [2.0]
    assert functions[0](["p", "p"], ["a", "b"], completion_ids=[[3, 4, 7], [3, 4, 5]]) == [0.0, -1.0]
