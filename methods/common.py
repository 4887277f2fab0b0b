"""Shared training helpers: device plan, TRL config construction, datasets, checkpoint save with provenance.

Heavy imports (torch, transformers, TRL) stay inside functions so the Snakefile can import the registry fast.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from pipeline.io import InputError, read_jsonl
from pipeline.logs import get_logger
from pipeline.provenance import write_provenance

log = get_logger("methods")


def device_plan(training: dict, where: str) -> dict:
    """Derive gradient accumulation from the devices this job really has, keeping the effective batch size fixed."""
    import torch

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    per_device = int(training["per_device_train_batch_size"])
    effective = int(training["effective_batch_size"])
    if effective % (per_device * world_size):
        raise InputError(
            f"config key {where}.effective_batch_size: {effective} is not a multiple of "
            f"per_device_train_batch_size ({per_device}) x devices ({world_size})"
        )
    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "world_size": world_size,
        "effective_batch_size": effective,
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": effective // (per_device * world_size),
        "bf16": bool(cuda and torch.cuda.is_bf16_supported() and training.get("precision", "auto") != "fp32"),
    }


def trl_config(config_cls: type, hyperparams: dict, *, plan: dict, out_dir: Path, seed: int, where: str) -> Any:
    """Build a TRL/transformers config from the config block; unknown keys fail naming the key and the class."""
    valid = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(hyperparams) - valid)
    if unknown:
        raise InputError(f"config key {where}: {unknown} not accepted by {config_cls.__name__}")
    kwargs = {
        "output_dir": str(out_dir / "trainer_state"),
        "seed": seed,
        "data_seed": seed,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": plan["device"] == "cpu",
        "bf16": plan["bf16"],
        "per_device_train_batch_size": plan["per_device_train_batch_size"],
        "gradient_accumulation_steps": plan["gradient_accumulation_steps"],
        "include_num_input_tokens_seen": "all",
        "activation_checkpointing": False,   # TRL defaults to on (~20 % slower); configs may turn it on
        "dataloader_num_workers": 0,
    }
    kwargs.update(hyperparams)
    return config_cls(**kwargs)


def load_dataset_file(path: str | Path, schema: str):
    """A JSONL file (validated row by row against its schema) as a datasets.Dataset."""
    from datasets import Dataset

    rows = read_jsonl(path, schema=schema)
    if not rows:
        raise InputError(f"{path}: no rows")
    return Dataset.from_list(rows)


def load_policy(path: str | Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: not a checkpoint folder (no config.json)")
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def save_checkpoint(model, tokenizer, out_dir: Path, *, stage: str, config_block: Any, parents: dict, seed: int,
                    started: float, tokens_seen: int, plan: dict, extra: dict | None = None) -> dict:
    """save_pretrained the model and tokenizer, then write provenance.json (hashing the saved files)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    wall = time.time() - started
    compute = {k: v for k, v in plan.items() if k != "bf16"}
    compute["precision"] = "bf16" if plan["bf16"] else "fp32"
    compute["device_hours"] = round(wall / 3600 * plan["world_size"], 6)
    return write_provenance(out_dir, stage=stage, config_block=config_block, parents=parents, seed=seed,
                            wall_time_s=wall, tokens_seen=tokens_seen, compute=compute, extra=extra)


# ---------------------------------------------------------------------------------------------------------------
# Trainer workarounds shared by the method modules (TRL 1.16). A method module calls these instead of copying them.

# Attention masks of the sequences a trainer's training batch trains on, by batch layout:
PAIRED_MASKS = ("chosen_attention_mask", "rejected_attention_mask")   # trl.experimental CPO/ORPO-style batches
UNPAIRED_MASKS = ("attention_mask",)   # one row per sequence (KTOTrainer; its KL batch is not trained on)


def counting_trainer(trainer_cls: type, masks: tuple[str, ...]) -> type:
    """``trainer_cls`` plus a count of the non-padding tokens it trains on: the sum of the batch's ``masks`` over every
    training micro-batch and every process. Trainer counts only ``input_ids``, which paired batches
    (``chosen_input_ids``/``rejected_input_ids``) lack, and counts padding; read the count with trainer_tokens_seen."""

    class CountingTrainer(trainer_cls):
        tokens_seen = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                missing = [key for key in masks if key not in inputs]
                if missing:
                    raise KeyError(f"{trainer_cls.__name__} batch has no {missing} (keys: {sorted(inputs)}); "
                                   f"count its tokens with other masks")
                count = sum(inputs[key].sum() for key in masks)
                self.tokens_seen += int(self.accelerator.gather(count.detach()).sum())
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    CountingTrainer.__name__ = CountingTrainer.__qualname__ = f"Counting{trainer_cls.__name__}"
    return CountingTrainer


def trainer_tokens_seen(trainer) -> int:
    """Tokens the trainer trained on: a counting_trainer's own count, else Trainer's ``num_input_tokens_seen``."""
    counted = getattr(trainer, "tokens_seen", None)
    if counted is not None:
        return int(counted)
    return int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)


def without_bos(tokenizer):
    """A copy of ``tokenizer`` without a BOS token, for the experimental CPO-style trainers (trl.experimental.cpo,
    trl.experimental.orpo): their tokenize_row prepends BOS to every prompt, which our chat template (and so SFT,
    generation and the other methods) never uses. Give the trainer this copy; save the original."""
    import copy

    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.bos_token = None
    return tokenizer
