"""SFT: supervised fine-tuning on chat conversations, loss on assistant tokens only (TRL SFTTrainer).

It trains the one SFT checkpoint every other method starts from, and is itself a row of every table.
"""

from __future__ import annotations

from methods.registry import TrainContext, TrainResult, register_method


@register_method("sft", family="sft", data=("sft",), config_class="trl:SFTConfig")
def train(ctx: TrainContext) -> TrainResult:
    from trl import SFTConfig, SFTTrainer

    from methods.common import (device_plan, load_dataset_file, load_policy, train_resuming, trainer_tokens_seen,
                                trl_config)
    from pipeline.io import InputError

    model, tokenizer = load_policy(ctx.policy)
    if not tokenizer.chat_template:  # TRL would fail on it with a TypeError (assistant_only_loss reads the template)
        raise InputError(f"config key base.chat_template: the tokenizer of {ctx.policy} has no chat template (a base "
                         f"model's, as Meta-Llama-3-8B's); name one, e.g. `chat_template: llama3`")
    plan = device_plan(ctx.block, f"methods.{ctx.method}")
    args = trl_config(SFTConfig, {"assistant_only_loss": True, **ctx.block["trainer"]}, plan=plan,
                      out_dir=ctx.out_dir, seed=ctx.seed, where=f"{ctx.method}.trainer")
    trainer = SFTTrainer(model=model, args=args, train_dataset=load_dataset_file(ctx.data["sft"], "sft_row"),
                         processing_class=tokenizer)
    train_resuming(trainer)
    return TrainResult(trainer.model, tokenizer, trainer_tokens_seen(trainer), plan,
                       metrics={"train_log": trainer.state.log_history})
