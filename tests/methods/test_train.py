"""The generic entry point (methods/train.py) and the registry: bad input names what is wrong, and every
method block of every shipped config is accepted by its method's config class before any job runs."""

import os
from pathlib import Path

import pytest
import yaml

from methods.registry import DATA_KINDS, check_block, get_method, registered
from methods.train import run
from pipeline.io import InputError

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "config").glob("*.yaml"))
METHODS = ["dpo", "ipo", "kto", "simpo", "ppo", "grpo", "iterative_dpo"]


def test_unknown_method_lists_the_registered_ones(tmp_path):
    with pytest.raises(KeyError, match=r"unknown method 'dpx' \(did you mean 'dpo'\?\); registered methods: \[.*'grpo'.*"
                                       r"'iterative_dpo'.*'kto'.*'ppo'.*'simpo'.*\]"):
        run("dpx", {"module": "dpx"}, seed=0, policy=tmp_path, reference=tmp_path, data={}, reward_model=None,
            out_dir=tmp_path / "out")


def test_missing_data_is_named(tmp_path):
    with pytest.raises(InputError, match=r"method 'kto' \(kto\) needs data \['kto'\]; got \['prefs'\]"):
        run("kto", {"module": "kto"}, seed=0, policy=tmp_path, reference=tmp_path,
            data={"prefs": tmp_path / "prefs.jsonl"}, reward_model=None, out_dir=tmp_path / "out")


def test_missing_reward_model_is_named(tmp_path):
    with pytest.raises(InputError, match=r"method 'grpo' \(grpo\) needs a reward model; none was given"):
        run("grpo", {"module": "grpo"}, seed=0, policy=tmp_path, reference=tmp_path,
            data={"online_prompts": tmp_path / "p.jsonl"}, reward_model=None, out_dir=tmp_path / "out")


def test_missing_input_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"input .*prefs\.jsonl does not exist"):
        run("dpo", {"module": "dpo"}, seed=0, policy=tmp_path, reference=tmp_path,
            data={"prefs": tmp_path / "prefs.jsonl"}, reward_model=None, out_dir=tmp_path / "out")


def test_every_method_declares_known_data():
    methods = registered()
    assert set(METHODS) - {"ipo"} <= set(methods)
    for spec in methods.values():
        assert set(spec.data) <= set(DATA_KINDS)
        assert spec.needs_reward_model == ("online_prompts" in spec.data)


def _config_object(module, block):
    """The method's config class built from the block, as its train() does (CPU plan)."""
    from trl import DPOConfig, GRPOConfig, KTOConfig

    from methods.common import trl_config
    from methods.ppo import ppo_config

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.cpo import CPOConfig

    plan = {"device": "cpu", "world_size": 1, "bf16": False, "gradient_accumulation_steps": 1,
            "per_device_train_batch_size": block["per_device_train_batch_size"],
            "effective_batch_size": block["effective_batch_size"]}
    where = f"methods.{module}.trainer"
    if module == "ppo":
        return ppo_config(block["trainer"], plan=plan, out_dir=Path("/tmp"), seed=0, where=where)
    classes = {"dpo": DPOConfig, "iterative_dpo": DPOConfig, "kto": KTOConfig, "grpo": GRPOConfig, "simpo": CPOConfig}
    return trl_config(classes[module], block["trainer"], plan=plan, out_dir=Path("/tmp"), seed=0, where=where)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_method_block_is_accepted_by_its_config_class(config):
    methods = yaml.safe_load(config.read_text())["methods"]
    for name, method_block in methods.items():
        module = method_block.get("module", name)
        check_block(module, method_block, f"methods.{name}")
        _config_object(get_method(module).name, method_block)


def test_reward_model_starts_from_its_init_model(world, sft, base, tmp_path):
    """reward_model.init (the report starts its RM from Meta-Llama-3-8B-Instruct, not our SFT model): the RM's
    backbone and tokenizer come from that model and provenance records it instead of an SFT parent. A local folder
    stands in for the hub id (the base checkpoint, whose weights differ from the SFT's)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from methods.reward_model import train_reward_model
    from pipeline.provenance import read_provenance
    from tests.methods.tiny_setup import block

    rm_block = {**block({"learning_rate": 0.0, "max_steps": 1}, batch=16), "init": {"hub_id": str(base)}}
    train_reward_model(rm_block, seed=0, sft=sft, prefs=world["rm_prefs"], out_dir=tmp_path / "rm")
    provenance = read_provenance(tmp_path / "rm")
    assert provenance["init"] == {"hub_id": str(base)} and "policy" not in provenance["parents"]
    rm = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    from_base = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    from_sft = AutoModelForSequenceClassification.from_pretrained(sft, num_labels=1)
    name = "model.layers.0.self_attn.q_proj.weight"
    weights = dict(rm.named_parameters())[name]
    assert torch.equal(weights, dict(from_base.named_parameters())[name])
    assert not torch.equal(weights, dict(from_sft.named_parameters())[name])
