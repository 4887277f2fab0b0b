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


def ranks() -> tuple[int, int, int]:
    """(rank, local rank, world size) of this process, as torchrun/accelerate launch set them (methods/launch.py)."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")))


def job_device() -> str:
    """This rank's own device: cuda:<LOCAL_RANK> on a GPU job, else cpu."""
    import torch

    return f"cuda:{ranks()[1]}" if torch.cuda.is_available() else "cpu"


def device_plan(training: dict, where: str) -> dict:
    """Split the block's effective batch over the processes this job really has (WORLD_SIZE, set by
    methods/launch.py): each device takes effective / world_size examples per optimizer step, in micro-batches of
    at most per_device_train_batch_size, accumulated. The effective batch size never changes with the devices."""
    import torch

    world_size = ranks()[2]
    configured = int(training["per_device_train_batch_size"])
    effective = int(training["effective_batch_size"])
    if effective % world_size:
        raise InputError(f"config key {where}.effective_batch_size: {effective} cannot be split evenly over "
                         f"{world_size} processes")
    share = effective // world_size
    per_device = min(configured, share)
    if share % per_device:
        raise InputError(
            f"config key {where}.effective_batch_size: {effective} / {world_size} device(s) = {share} per device, "
            f"not a multiple of per_device_train_batch_size ({configured})"
        )
    cuda = torch.cuda.is_available()
    trainer = training.get("trainer", {})
    return {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "world_size": world_size,
        "distributed": ("fsdp" if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")
                        else "ddp" if world_size > 1 else "none"),
        "effective_batch_size": effective,
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": share // per_device,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported() and training.get("precision", "auto") != "fp32"),
        "gradient_checkpointing": bool(trainer.get("activation_checkpointing", trainer.get("gradient_checkpointing"))),
    }


def precision(plan: dict) -> str:
    """What provenance says about numerics: weights are always loaded and updated in fp32 (load_policy); bf16
    only enters through autocast (TrainingArguments.bf16 / accelerate mixed precision) where the GPU supports it."""
    return "bf16 autocast, fp32 master weights" if plan["bf16"] else "fp32"


def trl_config(config_cls: type, hyperparams: dict, *, plan: dict, out_dir: Path, seed: int, where: str) -> Any:
    """Build a TRL/transformers config from the config block; unknown keys fail naming the key and the class."""
    valid = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(hyperparams) - valid)
    if unknown:
        raise InputError(f"config key {where}: {unknown} not accepted by {config_cls.__name__}")
    kwargs = {
        "output_dir": str(trainer_dir(out_dir)),
        "seed": seed,
        "data_seed": seed,
        "report_to": "none",
        "use_cpu": plan["device"] == "cpu",
        "bf16": plan["bf16"],
        "per_device_train_batch_size": plan["per_device_train_batch_size"],
        "gradient_accumulation_steps": plan["gradient_accumulation_steps"],
        "include_num_input_tokens_seen": "non_padding",   # real tokens: the same under any batch split
        "activation_checkpointing": False,   # TRL defaults to on (~20 % slower); configs may turn it on
        "dataloader_num_workers": 0,
        # Preemption: resumable checkpoints (model, optimizer, scheduler, RNG, data position) every 10 % of the
        # steps, the newest kept, in trainer_dir(out_dir); train_resuming() continues from it after a kill or a
        # Slurm timeout. A block's trainer: may set save_steps (an int = every N steps) or save_strategy: "no".
        "save_strategy": "steps",
        "save_steps": 0.1,
        "save_total_limit": 1,
    }
    hyperparams = dict(hyperparams)
    # transformers 5.23 renamed gradient_checkpointing(_kwargs) to activation_checkpointing(_kwargs) and ignores the
    # old name once the new one is given, as it is above: map the configs' (TRL's documented) names onto the new ones.
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
        if old in hyperparams:
            if new in hyperparams:
                raise InputError(f"config key {where}: give {old} or {new}, not both")
            hyperparams[new] = hyperparams.pop(old)
    if hyperparams.get("activation_checkpointing") and plan["world_size"] > 1:
        # DDP needs non-reentrant checkpointing (the reentrant form marks parameters ready twice)
        hyperparams.setdefault("activation_checkpointing_kwargs", {"use_reentrant": False})
    kwargs.update(hyperparams)
    return config_cls(**kwargs)


def load_dataset_file(path: str | Path, schema: str):
    """A JSONL file (validated row by row against its schema) as a datasets.Dataset."""
    from datasets import Dataset

    rows = read_jsonl(path, schema=schema)
    if not rows:
        raise InputError(f"{path}: no rows")
    return Dataset.from_list(rows)


def load_policy(path: str | Path, *, device: str | None = None):
    """A causal LM and its tokenizer, weights in fp32 (transformers 5 would load a bf16 checkpoint in bf16, and AdamW
    on bf16 weights loses updates smaller than bf16's resolution: the weights are the fp32 master copy, bf16 only
    enters through autocast). `device` moves it (sampling, scoring); trainers place models themselves."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: not a checkpoint folder (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if device is not None:
        model.to(device)
    return model, AutoTokenizer.from_pretrained(path)


def save_checkpoint(model, tokenizer, out_dir: Path, *, stage: str, config_block: Any, parents: dict, seed: int,
                    started: float, tokens_seen: int, plan: dict, extra: dict | None = None) -> dict:
    """save_pretrained the model and tokenizer, then write provenance.json (hashing the saved files).

    Under several processes every rank calls it: a sharded (FSDP) model is gathered to rank 0, rank 0 alone writes,
    the others wait at a barrier and return the provenance rank 0 wrote. Once saved, the trainer's resumable
    checkpoints (trainer_dir) are removed: the job is done."""
    import torch.distributed as dist

    from pipeline.provenance import read_provenance

    distributed = plan["world_size"] > 1   # the processes that trained it (a hub base is saved by rank 0 alone)
    if distributed and not dist.is_initialized():
        from accelerate import PartialState

        PartialState()   # joins the launched processes' group
    state_dict, model = _full_state_dict(model) if distributed else (None, model)
    if ranks()[0] == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir, **({"state_dict": state_dict} if state_dict is not None else {}))
        tokenizer.save_pretrained(out_dir)
        wall = time.time() - started
        compute = {k: v for k, v in plan.items() if k != "bf16"}
        compute["precision"] = precision(plan)
        compute["device_hours"] = round(wall / 3600 * plan["world_size"], 6)
        write_provenance(out_dir, stage=stage, config_block=config_block, parents=parents, seed=seed,
                         wall_time_s=wall, tokens_seen=tokens_seen, compute=compute, extra=extra)
        remove_resume_state(out_dir)
    if distributed:
        dist.barrier()
    return read_provenance(out_dir)


def _full_state_dict(model):
    """FSDP shards the parameters over the ranks: gather the full state dict to rank 0 (a collective: every rank
    calls it). Unsharded models (DDP keeps a full copy per rank) are saved as they are."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.tensor import DTensor

    sharded = isinstance(model, FullyShardedDataParallel) or any(isinstance(p, DTensor) for p in model.parameters())
    if not sharded:
        return None, model
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state, getattr(model, "module", model)


def train_resuming(trainer) -> None:
    """trainer.train(), continuing from the newest complete checkpoint its output_dir (trainer_dir) holds: a job
    that was killed or timed out resumes at the step it last saved."""
    fingerprint = {
        "args": {k: v for k, v in trainer.args.to_dict().items() if k != "logging_dir"},
        "policy": _checkpoint_hash_of(getattr(trainer.model.config, "_name_or_path", "")),
        "examples": len(trainer.train_dataset) if trainer.train_dataset is not None else None,
    }
    last = resume_point(Path(trainer.args.output_dir), fingerprint, trainer.accelerator)
    trainer.train(resume_from_checkpoint=str(last) if last is not None else None)


def resume_point(root: Path, fingerprint: dict, accelerator, marker: str = "trainer_state.json") -> Path | None:
    """The checkpoint a (re)started job continues from, or None. `fingerprint` (arguments, starting checkpoint)
    is recorded in root/run.json: checkpoints of another run are discarded, not resumed."""
    import json
    import shutil

    fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
    record = root / "run.json"
    stale = record.is_file() and json.loads(record.read_text()) != fingerprint
    last = None if stale else last_checkpoint(root, marker)
    accelerator.wait_for_everyone()          # every rank has decided before rank 0 changes the folder
    if accelerator.is_main_process:
        if stale:
            log.info("discarding %s: checkpoints of a different run", root)
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(fingerprint, sort_keys=True))
    accelerator.wait_for_everyone()
    if last is not None:
        log.info("resuming from %s (step %d)", last, int(last.name.split("-")[1]))
    return last


def last_checkpoint(root: Path, marker: str = "trainer_state.json") -> Path | None:
    """The newest checkpoint-<step> folder that was completely written (its `marker` file is written last)."""
    done = [p for p in Path(root).glob("checkpoint-*") if (p / marker).is_file() and p.name.split("-")[1].isdigit()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _checkpoint_hash_of(path: str) -> str | None:
    provenance = Path(path) / "provenance.json"
    if not path or not provenance.is_file():
        return None
    import json

    return json.loads(provenance.read_text()).get("checkpoint_hash")


def trainer_dir(out_dir: Path) -> Path:
    """Where a training job keeps its trainer's files: resumable checkpoints, logs. Inside the checkpoint folder but
    left out of its hash (pipeline/provenance.TRAINER_STATE), and not a declared output, so it survives a killed
    job for the rerun to resume from."""
    from pipeline.provenance import TRAINER_STATE

    return Path(out_dir) / TRAINER_STATE


def remove_resume_state(out_dir: Path) -> None:
    """Once the checkpoint is saved: the resumable checkpoints (an 8B model's optimizer states are ~64 GB) and the
    ranks' exchange files are no longer needed; logs stay."""
    import shutil

    root = trainer_dir(out_dir)
    for path in root.iterdir() if root.is_dir() else []:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name == "run.json":
            path.unlink()


# ---------------------------------------------------------------------------------------------------------------
# Trainer workarounds shared by the method modules (TRL 1.16). A method module calls these instead of copying them.

# The attention masks of a paired batch of the trl.experimental CPO-style trainers (CPO/SimPO, ORPO). Trainer counts
# the non-padding tokens of `input_ids` batches itself (trl_config: include_num_input_tokens_seen="non_padding"), as
# in SFT, DPO and KTO (unpaired: one row per completion); these batches have no `input_ids`, so it counts nothing.
PAIRED_MASKS = ("chosen_attention_mask", "rejected_attention_mask")


def counting_trainer(trainer_cls: type, masks: tuple[str, ...]) -> type:
    """``trainer_cls`` plus a count of the non-padding tokens it trains on: the sum of the batch's ``masks`` over every
    training micro-batch and every process, for trainers whose batches Trainer cannot count (PAIRED_MASKS); read it
    with trainer_tokens_seen."""

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
