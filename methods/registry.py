"""The method registry: a config name maps to a module that registered itself with ``@register_method``.

A method module declares what it needs, so the generic `train` rule knows its inputs without importing torch, and
the config class its block's `trainer:` keys belong to, as an import path (imported only when asked for):

    @register_method("dpo", family="paired", data=("prefs",), needs_reference_model=True, config_class="trl:DPOConfig")
    def train(ctx: TrainContext) -> TrainResult: ...

Tests and checks that walk the methods read this registry (``registered()``), never a list of their own.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from pipeline.plugins import import_all, lookup

# Data a method may ask for, by the data stage's file key (see world/data.py OUTPUTS).
DATA_KINDS = ("sft", "prefs", "kto", "online_prompts")
# "iterative": trained by its own rules over {iteration} (workflow/rules/iterative.smk), not the generic `train` rule.
# "inference": no training; the function returns an InferenceRule (the model = a parent checkpoint + a decoding rule
# that generation applies), written by the `inference_rule` rule (workflow/rules/train.smk).
FAMILIES = ("sft", "paired", "unpaired", "online", "iterative", "inference")
# "package.module:Class"
CONFIG_CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass
class TrainContext:
    """Everything a method's train function receives."""

    method: str                      # the config name (e.g. "ipo"), not the module name
    block: dict[str, Any]            # the method's config block (module, trainer hyperparameters, ...)
    policy: Path                     # where training starts: the SFT checkpoint (the base model for SFT itself)
    reference: Path                  # the fixed reference: the SFT checkpoint
    data: dict[str, Path]            # data kind -> JSONL file, for the kinds the method declared
    reward_model: Path | None        # the Bradley-Terry reward model, when declared
    out_dir: Path
    seed: int


@dataclass
class TrainResult:
    """What a method hands back; the caller saves it with provenance."""

    model: Any
    tokenizer: Any
    tokens_seen: int
    plan: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class InferenceRule:
    """What an inference-time method hands back instead of weights: the backend wrapper generation applies to the
    policy (``"module:Class"``, built as ``Class(inner_backend, rule_dict)`` by evals/backends.py) and its settings.
    methods/train.py writes it (pipeline.provenance.INFERENCE_RULE) with provenance naming the policy (and reward
    model) by hash."""

    wrapper: str
    settings: dict[str, Any]


TrainFn = Callable[[TrainContext], "TrainResult | InferenceRule"]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    family: str
    data: tuple[str, ...]
    train: TrainFn
    needs_reference_model: bool = False
    needs_reward_model: bool = False
    needs_generation: bool = False
    config_class: str | None = None          # "module:Class" whose fields are the keys of the block's `trainer:`
    extra_trainer_keys: tuple[str, ...] = ()  # `trainer:` keys the module reads itself, besides the class's fields

    def load_config_class(self) -> type:
        """The config class (a dataclass such as TRL's DPOConfig), imported now: this may import torch and TRL."""
        if self.config_class is None:
            raise LookupError(f"method {self.name!r} declares no config class")
        try:
            return load_class(self.config_class)
        except (ImportError, AttributeError) as err:
            raise LookupError(f"method {self.name!r}: config class {self.config_class!r} cannot be imported "
                              f"({err})") from None


def load_class(path: str) -> type:
    """``"module:Class"`` imported now."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(name: str, *, family: str, data: tuple[str, ...], needs_reference_model: bool = False,
                    needs_reward_model: bool = False, needs_generation: bool = False, config_class: str | None = None,
                    extra_trainer_keys: tuple[str, ...] = ()) -> Callable[[TrainFn], TrainFn]:
    """Register ``train(ctx) -> TrainResult`` as method ``name`` (the module's file name, methods/<name>.py).

    ``config_class``: "module:Class", e.g. "trl:DPOConfig" or "trl.experimental.orpo:ORPOConfig";
    ``extra_trainer_keys``: `trainer:` keys that are not fields of that class (the module consumes them).
    """
    if family not in FAMILIES:
        raise ValueError(f"method {name!r}: family {family!r} is not one of {FAMILIES}")
    unknown = set(data) - set(DATA_KINDS)
    if unknown:
        raise ValueError(f"method {name!r}: unknown data kinds {sorted(unknown)}; expected some of {DATA_KINDS}")
    if config_class is not None and not CONFIG_CLASS_PATH.match(config_class):
        raise ValueError(f"method {name!r}: config_class {config_class!r} is not of the form 'module:Class'")

    def decorator(fn: TrainFn) -> TrainFn:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is already registered (by {_REGISTRY[name].train.__module__})")
        _REGISTRY[name] = MethodSpec(name, family, tuple(data), fn, needs_reference_model, needs_reward_model,
                                     needs_generation, config_class, tuple(extra_trainer_keys))
        return fn

    return decorator


def registered() -> dict[str, MethodSpec]:
    """Import every module of methods/ and return all registered methods (slow: for listings and errors)."""
    import_all("methods")
    return dict(_REGISTRY)


def get_method(module: str) -> MethodSpec:
    """The method registered by ``methods/<module>.py`` (imports only that module, which is light)."""
    return lookup(_REGISTRY, "methods", module, "method")


# Config-time checks a method module may add (light: no torch), run by `check_block` before any job starts.
_CONFIG_CHECKS: dict[str, Callable[[dict, str], None]] = {}


def register_config_check(module: str) -> Callable[[Callable[[dict, str], None]], Callable[[dict, str], None]]:
    """Register ``check(block, where)`` for methods/<module>.py; it raises ValueError naming the key (``where``...)."""

    def decorator(fn: Callable[[dict, str], None]) -> Callable[[dict, str], None]:
        _CONFIG_CHECKS[module] = fn
        return fn

    return decorator


def check_block(module: str, block: dict, where: str) -> None:
    """Run the config check methods/<module>.py registered, if any (after importing it through get_method)."""
    get_method(module)
    check = _CONFIG_CHECKS.get(module)
    if check is not None:
        check(block, where)


def check_method_blocks(config: dict, source: str) -> None:
    """Every training block (``sft`` and each of ``methods``) names a registered module of the right family and
    passes that module's own config check; errors name the config key (a ``plugin_checks`` of check_config)."""
    from pipeline.config import ConfigError

    for name, block in {"sft": config["sft"], **config["methods"]}.items():
        module = block.get("module", name)
        where = "sft" if name == "sft" else f"methods.{name}"
        try:
            spec = get_method(module)
        except KeyError as err:
            raise ConfigError(f"{source}: key {where}.module: {err.args[0]}") from None
        if name == "sft" and spec.family != "sft":
            raise ConfigError(f"{source}: key sft.module: {module!r} is a {spec.family} method, expected an sft one")
        try:
            check_block(module, block, where)
            if spec.family == "inference":     # no trainer, no batch sizes: its own config check covers the block
                continue
            check_trainer_keys(spec.load_config_class() if spec.config_class else None, block, where,
                               sys.modules[spec.train.__module__], spec.extra_trainer_keys)
        except ValueError as err:
            raise ConfigError(f"{source}: {str(err).removeprefix('config ')}") from None
    try:
        check_trainer_keys(load_class(REWARD_MODEL_CONFIG), config["reward_model"], "reward_model")
        if "pretrain" in config["base"]:
            check_trainer_keys(load_class(PRETRAIN_CONFIG), config["base"]["pretrain"], "base.pretrain")
    except ValueError as err:
        raise ConfigError(f"{source}: {str(err).removeprefix('config ')}") from None


# The stages outside the method registry: methods/reward_model.py and methods/base_model.py.
REWARD_MODEL_CONFIG = "trl:RewardConfig"
PRETRAIN_CONFIG = "trl:SFTConfig"


def check_trainer_keys(config_class: type | None, block: dict, where: str, module: Any = None,
                       extra_keys: tuple[str, ...] = ()) -> None:
    """`trainer:` keys are fields of the method's config class (plus the module's ``EXTRA_KEYS``, minus its
    ``DERIVED_KEYS``, which the run sets), and the batch sizes divide: known before any job starts."""
    effective, per_device = block["effective_batch_size"], block["per_device_train_batch_size"]
    if effective % per_device:
        raise ValueError(f"config key {where}.effective_batch_size: {effective} is not a multiple of "
                         f"per_device_train_batch_size ({per_device})")
    if config_class is None:
        return
    extra = set(extra_keys) | set(getattr(module, "EXTRA_KEYS", ()))
    derived = set(getattr(module, "DERIVED_KEYS", ()))
    valid = ({f.name for f in dataclasses.fields(config_class)} | extra) - derived
    for key in sorted(block["trainer"]):
        if key not in valid:
            from difflib import get_close_matches

            close = get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"config key {where}.trainer.{key}: not a field of {config_class.__name__}{hint}"
                             + (" (set from the block and the devices)" if key in derived else ""))
