"""SimPO: reference-free, length-normalised preference optimisation with a target reward margin (Meng et al. 2024).

    loss = -log sigmoid( beta/|y_w| * log pi(y_w|x) - beta/|y_l| * log pi(y_l|x) - gamma )

TRL 1.16 has no SimPOTrainer; SimPO is a loss type of `trl.experimental.cpo.CPOTrainer` (`loss_type="simpo"`, with
CPO's behaviour-cloning term switched off by `cpo_alpha=0`). Those two values define the method, so they live
here; `beta` and the margin `simpo_gamma` are hyperparameters and live in the config block's `trainer:`.
This module is the worked example of README "Add a method".
"""

from __future__ import annotations

import os

from methods.registry import TrainContext, TrainResult, register_config_check, register_method

DEFINITION = {"loss_type": "simpo", "cpo_alpha": 0.0}


@register_config_check("simpo")
def check_definition(block: dict, where: str) -> None:
    for key, value in DEFINITION.items():
        if block.get("trainer", {}).get(key, value) != value:
            raise ValueError(f"config key {where}.trainer.{key}: SimPO fixes it to {value!r} (use another module)")


@register_method("simpo", family="paired", data=("prefs",), needs_reference_model=False,
                 config_class="trl.experimental.cpo:CPOConfig")
def train(ctx: TrainContext) -> TrainResult:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    from methods.common import (PAIRED_MASKS, counting_trainer, device_plan, load_dataset_file, load_policy,
                                train_resuming, trainer_tokens_seen, trl_config, without_bos)
    from pipeline.io import InputError

    try:
        check_definition(ctx.block, f"methods.{ctx.method}")
    except ValueError as err:
        raise InputError(str(err)) from None
    model, tokenizer = load_policy(ctx.policy)
    plan = device_plan(ctx.block, f"methods.{ctx.method}")
    args = trl_config(CPOConfig, {**ctx.block["trainer"], **DEFINITION}, plan=plan, out_dir=ctx.out_dir,
                      seed=ctx.seed, where=f"methods.{ctx.method}.trainer")
    pairs = load_dataset_file(ctx.data["prefs"], "preference_row").select_columns(["prompt", "chosen", "rejected"])
    trainer = counting_trainer(CPOTrainer, PAIRED_MASKS)(model=model, args=args, train_dataset=pairs,
                                                         processing_class=without_bos(tokenizer))
    train_resuming(trainer)
    return TrainResult(trainer.model, tokenizer, trainer_tokens_seen(trainer), plan,
                       metrics={"train_log": trainer.state.log_history})
