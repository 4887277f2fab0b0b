"""PPO (methods/ppo.py: our PPOTrainer, the reward model as reward, KL to the SFT reference): the mean reward of
sampled answers to the training prompts rises."""

import pytest

from methods.ppo import ppo_config
from pipeline.io import InputError
from pipeline.provenance import read_provenance
from tiny_setup import block, train_online_and_measure

TRAINER = {"learning_rate": 1e-3, "num_rollout_steps": 12, "num_mini_batches": 2, "ppo_epochs": 2,
           "max_new_tokens": 24, "temperature": 1.0, "kl_coef": 0.05, "vf_coef": 0.5}


def test_ppo_raises_the_mean_reward(world, sft, reward_model, tmp_path):
    config = block(TRAINER, module="ppo")
    del config["trainer"]["max_length"], config["trainer"]["logging_steps"]
    record, before, after = train_online_and_measure("ppo", config, world, sft, reward_model, tmp_path / "ppo")
    assert after > before + 0.2, (before, after)
    assert record["parents"]["reward_model"]["checkpoint_hash"] == read_provenance(reward_model)["checkpoint_hash"]
    assert record["parents"]["reference"]["checkpoint_hash"] == read_provenance(sft)["checkpoint_hash"]
    assert record["tokens_seen"] > 0


def test_batch_sizes_follow_the_block_and_devices(tmp_path):
    plan = {"device": "cpu", "bf16": False, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}
    config = ppo_config({"num_mini_batches": 3}, plan=plan, out_dir=tmp_path, seed=0, where="methods.ppo.trainer")
    assert (config.mini_batch_size, config.micro_batch_size, config.per_device_train_batch_size) == (8, 4, 24)
    with pytest.raises(InputError, match=r"methods\.ppo\.trainer: \['mini_batch_size'\] not accepted"):
        ppo_config({"mini_batch_size": 4}, plan=plan, out_dir=tmp_path, seed=0, where="methods.ppo.trainer")
