"""ORPO: odds-ratio preference optimisation (Hong et al. 2024), reference-free; SFT and preference in one loss.

    loss = NLL(y_w | x) - beta * log sigmoid( log odds(y_w | x) - log odds(y_l | x) ),
    odds(y | x) = P / (1 - P),  P = exp(mean per-token log pi(y | x))

`beta` is the paper's lambda (a hyperparameter: the block's `trainer:`). TRL 1.16 has it as
`trl.experimental.orpo.ORPOTrainer`, a CPO-style trainer (paired chosen_/rejected_ batches, BOS prepended), so it
uses the shared workarounds of methods/common.py. Here it starts from the SFT checkpoint like every other method.
"""

from __future__ import annotations

import os

from methods.registry import TrainContext, TrainResult, register_method


@register_method("orpo", family="paired", data=("prefs",), needs_reference_model=False,
                 config_class="trl.experimental.orpo:ORPOConfig")
def train(ctx: TrainContext) -> TrainResult:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from methods.common import (PAIRED_MASKS, counting_trainer, device_plan, load_dataset_file, load_policy,
                                train_resuming, trainer_tokens_seen, trl_config, without_bos)

    model, tokenizer = load_policy(ctx.policy)
    plan = device_plan(ctx.block, f"methods.{ctx.method}")
    args = trl_config(ORPOConfig, ctx.block["trainer"], plan=plan, out_dir=ctx.out_dir, seed=ctx.seed,
                      where=f"methods.{ctx.method}.trainer")
    pairs = load_dataset_file(ctx.data["prefs"], "preference_row").select_columns(["prompt", "chosen", "rejected"])
    trainer = counting_trainer(ORPOTrainer, PAIRED_MASKS)(model=model, args=args, train_dataset=pairs,
                                                          processing_class=without_bos(tokenizer))
    train_resuming(trainer)
    return TrainResult(trainer.model, tokenizer, trainer_tokens_seen(trainer), plan,
                       metrics={"train_log": trainer.state.log_history})
