"""DPO on pairwise preferences (TRL DPOTrainer), reference = the SFT checkpoint.

Loss variants are config values, not modules: IPO is this module with `trainer.loss_type: ipo` and its own beta.
Iterative DPO (methods/iterative_dpo.py) calls `train_dpo` once per iteration on its own on-policy pairs.
"""

from __future__ import annotations

from pathlib import Path

from methods.registry import TrainContext, TrainResult, register_config_check, register_method

# DPOConfig.loss_type values in TRL 1.16 (tests/methods/test_dpo.py checks this list against the pinned TRL).
# TRL rejects a wrong value only once training starts; we reject it when the config is checked.
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")


@register_config_check("dpo")
def check_loss_type(block: dict, where: str) -> None:
    loss = block.get("trainer", {}).get("loss_type", "sigmoid")
    for name in [loss] if isinstance(loss, str) else loss:
        if name not in LOSS_TYPES:
            raise ValueError(f"config key {where}.trainer.loss_type: {name!r} is not one of {list(LOSS_TYPES)}")


def train_dpo(method: str, block: dict, *, policy: Path, reference: Path, prefs: Path, out_dir: Path,
              seed: int, callbacks: list | None = None) -> TrainResult:
    """DPOTrainer from `policy` against the frozen `reference` on a prompt/chosen/rejected JSONL file; `callbacks`:
    extra transformers TrainerCallbacks (benchmarks/gpu_check.py times the steps)."""
    from trl import DPOConfig, DPOTrainer

    from methods.common import (device_plan, load_dataset_file, load_policy, train_resuming, trainer_tokens_seen,
                                trl_config)
    from pipeline.io import InputError

    try:
        check_loss_type(block, f"methods.{method}")
    except ValueError as err:
        raise InputError(str(err)) from None
    model, tokenizer = load_policy(policy)
    ref_model, _ = load_policy(reference)
    plan = device_plan(block, f"methods.{method}")
    args = trl_config(DPOConfig, block["trainer"], plan=plan, out_dir=out_dir, seed=seed,
                      where=f"methods.{method}.trainer")
    pairs = load_dataset_file(prefs, "preference_row").select_columns(["prompt", "chosen", "rejected"])
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=pairs,
                         processing_class=tokenizer, callbacks=callbacks)
    train_resuming(trainer)
    return TrainResult(trainer.model, tokenizer, trainer_tokens_seen(trainer), plan,
                       metrics={"train_log": trainer.state.log_history})


@register_method("dpo", family="paired", data=("prefs",), needs_reference_model=True, config_class="trl:DPOConfig")
def train(ctx: TrainContext) -> TrainResult:
    return train_dpo(ctx.method, ctx.block, policy=ctx.policy, reference=ctx.reference, prefs=ctx.data["prefs"],
                     out_dir=ctx.out_dir, seed=ctx.seed)
