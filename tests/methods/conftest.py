"""Shared, session-scoped tiny fixtures for the method tests: a tiny micro world, its tokenizer, a tiny Llama
briefly SFT'd through the real entry point (methods.train.run), and a tiny Bradley-Terry reward model trained by
methods/reward_model.py. Everything runs on CPU in seconds; sizes and measurement helpers are in tiny_setup.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from tiny_setup import ARCHITECTURE, WORLD, block, write_training_data


@pytest.fixture(autouse=True)
def _single_thread():
    # Tiny matrices: one thread is much faster than several on a shared, busy CPU.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    return write_training_data(WORLD, tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def base(world, tmp_path_factory) -> Path:
    """A tiny randomly initialised Llama with the world's tokenizer, saved with provenance (no pretraining)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from methods.base_model import tokenizer_corpus
    from methods.common import save_checkpoint
    from world.tokenizer import train_tokenizer

    torch.manual_seed(0)
    tokenizer = train_tokenizer(tokenizer_corpus(world["pretrain"], world["sft"]), 400)
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                         tie_word_embeddings=True, **ARCHITECTURE)
    out = tmp_path_factory.mktemp("base")
    plan = {"device": "cpu", "world_size": 1, "effective_batch_size": 1, "per_device_train_batch_size": 1,
            "gradient_accumulation_steps": 1, "bf16": False}
    save_checkpoint(LlamaForCausalLM(config), tokenizer, out, stage="base", config_block=ARCHITECTURE, parents={},
                    seed=0, started=time.time(), tokens_seen=0, plan=plan)
    return out


@pytest.fixture(scope="session")
def sft(world, base, tmp_path_factory) -> Path:
    """The tiny SFT checkpoint every method test starts from (real TRL SFTTrainer via methods.train.run)."""
    from methods.train import run

    out = tmp_path_factory.mktemp("sft")
    with _one_thread():
        run("sft", block({"learning_rate": 3e-3, "max_steps": 60, "lr_scheduler_type": "constant", "warmup_steps": 0},
                         batch=32, module="sft"),
            seed=0, policy=base, reference=base, data={"sft": world["sft"]}, reward_model=None, out_dir=out)
    return out


@pytest.fixture(scope="session")
def reward_model(world, sft, tmp_path_factory) -> Path:
    """A tiny Bradley-Terry reward model from the SFT checkpoint (methods/reward_model.py, TRL RewardTrainer)."""
    from methods.reward_model import train_reward_model

    out = tmp_path_factory.mktemp("reward_model")
    with _one_thread():
        train_reward_model(block({"learning_rate": 3e-3, "max_steps": 24}, batch=16), seed=0, sft=sft,
                           prefs=world["rm_prefs"], out_dir=out)
    return out


class _one_thread:
    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)


