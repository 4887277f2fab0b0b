"""DPO on pairwise preferences (TRL DPOTrainer), reference = the SFT checkpoint.

Loss variants are config values, not modules: IPO is this module with `trainer.loss_type: ipo` and its own beta.
"""

from __future__ import annotations

from methods.registry import TrainContext, TrainResult, register_method


@register_method("dpo", family="paired", data=("prefs",), needs_reference_model=True)
def train(ctx: TrainContext) -> TrainResult:
    from trl import DPOConfig, DPOTrainer

    from methods.common import device_plan, load_dataset_file, load_policy, trainer_tokens_seen, trl_config

    model, tokenizer = load_policy(ctx.policy)
    reference, _ = load_policy(ctx.reference)
    plan = device_plan(ctx.block, f"methods.{ctx.method}")
    args = trl_config(DPOConfig, ctx.block["trainer"], plan=plan, out_dir=ctx.out_dir, seed=ctx.seed,
                      where=f"methods.{ctx.method}.trainer")
    trainer = DPOTrainer(model=model, ref_model=reference, args=args,
                         train_dataset=load_dataset_file(ctx.data["prefs"], "preference_row"),
                         processing_class=tokenizer)
    trainer.train()
    return TrainResult(trainer.model, tokenizer, trainer_tokens_seen(trainer), plan,
                       metrics={"train_log": trainer.state.log_history})
