"""The generic entry point (methods/train.py) and the registry: bad input names what is wrong, and every
method block of every shipped config is accepted by its method's config class before any job runs."""

import dataclasses
import os
import re
from pathlib import Path

import pytest
import yaml

from methods.registry import DATA_KINDS, check_block, get_method, register_method, registered
from methods.train import run
from pipeline.io import InputError
from tests.study_configs import study_configs

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = study_configs()


def test_unknown_method_lists_the_registered_ones(tmp_path):
    """Guards against an error that names a stale hand-kept list instead of the registry's methods."""
    names = re.escape(str(sorted(registered())))
    with pytest.raises(KeyError, match=rf"unknown method 'dpx' \(did you mean 'dpo'\?\); registered methods: {names}"):
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


def test_every_method_declares_known_data_and_an_importable_config_class():
    """Guards against a registered method whose data kind no stage writes, or whose config class (the one its
    `trainer:` keys are checked against) does not exist in the pinned TRL."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    for spec in registered().values():
        assert set(spec.data) <= set(DATA_KINDS)
        if spec.family == "inference":          # no training: a rule over the SFT model (best-of-n), no trainer keys
            assert spec.config_class is None, spec.name
            continue
        assert spec.needs_reward_model == ("online_prompts" in spec.data)
        assert dataclasses.is_dataclass(spec.load_config_class()), spec.name


def test_a_config_class_must_be_an_import_path():
    """Guards against registering a class object or a dotted name that load_config_class cannot import lazily."""
    with pytest.raises(ValueError, match=r"config_class 'trl.DPOConfig' is not of the form 'module:Class'"):
        register_method("not_registered", family="paired", data=("prefs",), config_class="trl.DPOConfig")


def _config_object(spec, block, where):
    """The method's config class (from the registry) built from the block's `trainer:` keys, as train() builds it
    on a CPU: TRL/transformers classes through methods.common.trl_config, other dataclasses directly."""
    from transformers import TrainingArguments

    from methods.common import trl_config

    cls = spec.load_config_class()
    trainer = {k: v for k, v in block["trainer"].items() if k not in spec.extra_trainer_keys}
    if not issubclass(cls, TrainingArguments):
        unknown = sorted(set(trainer) - {f.name for f in dataclasses.fields(cls)})
        assert not unknown, f"{where}: {unknown} not fields of {cls.__name__}"
        return cls(**trainer)
    plan = {"device": "cpu", "world_size": 1, "bf16": False, "gradient_accumulation_steps": 1,
            "per_device_train_batch_size": block["per_device_train_batch_size"],
            "effective_batch_size": block["effective_batch_size"]}
    return trl_config(cls, trainer, plan=plan, out_dir=Path("/tmp"), seed=0, where=where)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_training_block_is_accepted_by_its_config_class(config):
    """Guards against a shipped config whose `trainer:` keys (or values) the method's config class rejects, which
    would otherwise surface only when the job starts, possibly hours into a study."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    study = yaml.safe_load(config.read_text())
    for name, block in {"sft": study["sft"], **study["methods"]}.items():
        where = "sft" if name == "sft" else f"methods.{name}"
        spec = get_method(block.get("module", name))
        check_block(spec.name, block, where)
        if spec.family == "inference":          # no `trainer:` (best-of-n): its config check above covers the block
            continue
        assert spec.config_class, f"{where}: module {spec.name!r} registers no config_class"
        _config_object(spec, block, f"{where}.trainer")


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
