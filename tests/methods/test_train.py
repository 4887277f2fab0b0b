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

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "config").glob("*.yaml"))


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
        assert spec.config_class, f"{where}: module {spec.name!r} registers no config_class"
        _config_object(spec, block, f"{where}.trainer")
