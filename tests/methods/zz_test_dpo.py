"""DPO (methods/dpo.py): the implicit reward margin on the training pairs rises; loss types are checked early."""

import re
import dataclasses

import pytest
from transformers import AutoTokenizer

from tiny_setup import block, implicit_margin
from methods.train import run
from pipeline.io import InputError, read_jsonl
from pipeline.provenance import read_provenance


def train_and_measure(method, trainer, world, sft, tmp_path, average=False):
    out = tmp_path / method
    record = run(method, block(trainer, module="dpo"), seed=0, policy=sft, reference=sft,
                 data={"prefs": world["prefs"]}, reward_model=None, out_dir=out)
    rows = read_jsonl(world["prefs"])
    tokenizer = AutoTokenizer.from_pretrained(sft)
    before = implicit_margin(sft, sft, tokenizer, rows, trainer["beta"], average)
    after = implicit_margin(out, sft, tokenizer, rows, trainer["beta"], average)
    return record, before, after


def test_dpo_raises_the_implicit_reward_margin(world, sft, tmp_path):
    record, before, after = train_and_measure(
        "dpo", {"learning_rate": 5e-3, "beta": 0.1, "max_steps": 12}, world, sft, tmp_path)
    assert before == pytest.approx(0.0, abs=1e-6)          # the policy starts as its reference
    assert after > before + 1000, (before, after)
    sft_hash = read_provenance(sft)["checkpoint_hash"]
    assert record["parents"]["policy"]["checkpoint_hash"] == sft_hash
    assert record["parents"]["reference"]["checkpoint_hash"] == sft_hash
    assert record["tokens_seen"] > 0 and record["compute"]["effective_batch_size"] == 8


def test_loss_types_match_the_pinned_trl():
    from trl import DPOConfig

    from methods.dpo import LOSS_TYPES

    help_text = next(f for f in dataclasses.fields(DPOConfig) if f.name == "loss_type").metadata["help"]
    assert set(LOSS_TYPES) == set(re.findall(r"`'([a-z_]+)'`", help_text))


def test_unknown_loss_type_is_named_before_training(world, sft, tmp_path):
    with pytest.raises(InputError, match=r"methods\.dpo\.trainer\.loss_type: 'ipx' is not one of"):
        run("dpo", block({"loss_type": "ipx"}, module="dpo"), seed=0, policy=sft, reference=sft,
            data={"prefs": world["prefs"]}, reward_model=None, out_dir=tmp_path / "bad")
