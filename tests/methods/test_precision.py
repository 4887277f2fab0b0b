"""Precision and memory settings of every trainer (methods/common.py): fp32 master weights, bf16 only through
autocast (stated in provenance), and activation checkpointing honoured when the config asks for it."""

import pytest
import torch

from methods.common import load_policy, precision, trl_config
from pipeline.io import InputError

PLAN = {"device": "cpu", "world_size": 1, "bf16": False, "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1, "effective_batch_size": 2}


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory):
    """A tiny Llama saved in bf16, as Meta-Llama-3-8B is on the hub."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32)
    out = tmp_path_factory.mktemp("bf16")
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(out)
    tok = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>"))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(out)
    return out


def test_bf16_checkpoint_loads_as_fp32_master_weights_and_small_updates_survive(bf16_checkpoint):
    """transformers 5 loads a bf16 checkpoint in bf16 (dtype="auto"); AdamW on bf16 weights rounds away updates
    below bf16's resolution (measured: 0.9 % of the weights moved in 10 steps at lr 5e-7). Loaded by load_policy,
    the weights are fp32 and one AdamW step at the report's lr 5e-7 moves (nearly) every weight."""
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(bf16_checkpoint).dtype == torch.bfloat16   # the trap
    model, _ = load_policy(bf16_checkpoint)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-7, weight_decay=0.0)
    model(input_ids=torch.tensor([[1, 1, 0, 1]]), labels=torch.tensor([[1, 1, 0, 1]])).loss.backward()
    optimizer.step()
    moved = sum(int((p.detach() != b).sum()) for p, b in zip(model.parameters(), before))
    with_grad = sum(int((p.grad != 0).sum()) for p in model.parameters())
    assert moved >= 0.99 * with_grad > 0


def test_gradient_checkpointing_in_the_config_turns_activation_checkpointing_on(tmp_path):
    """transformers 5.23 ignores `gradient_checkpointing` once `activation_checkpointing` is given, and trl_config
    gives it (off by default): the config's key must be mapped, not dropped."""
    from trl import DPOConfig

    on = trl_config(DPOConfig, {"gradient_checkpointing": True}, plan=PLAN, out_dir=tmp_path, seed=0, where="m.t")
    off = trl_config(DPOConfig, {}, plan=PLAN, out_dir=tmp_path, seed=0, where="m.t")
    assert on.activation_checkpointing is True and on.gradient_checkpointing is True
    assert off.activation_checkpointing is False
    two = trl_config(DPOConfig, {"gradient_checkpointing": True}, plan={**PLAN, "world_size": 2}, out_dir=tmp_path,
                     seed=0, where="m.t")
    assert two.activation_checkpointing_kwargs == {"use_reentrant": False}    # DDP-safe form
    with pytest.raises(InputError, match=r"m\.t: give gradient_checkpointing or activation_checkpointing"):
        trl_config(DPOConfig, {"gradient_checkpointing": True, "activation_checkpointing": True}, plan=PLAN,
                   out_dir=tmp_path, seed=0, where="m.t")


def test_provenance_states_the_precision():
    assert precision(PLAN) == "fp32"
    assert precision({**PLAN, "bf16": True}) == "bf16 autocast, fp32 master weights"

