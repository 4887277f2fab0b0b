"""KTO on unpaired desirable/undesirable completions (TRL KTOTrainer), reference = the SFT checkpoint.

Data: results/<study>/data/kto.jsonl (prompt/completion/label), the offline pairs unpaired (chosen -> desirable).
`trainer.desirable_weight` / `trainer.undesirable_weight` weight the two halves of the loss (config, not code).
Tokens seen: Trainer's own count, the non-padding tokens of the trained completions (the KL batch is not trained on).
"""

from __future__ import annotations

from methods.registry import TrainContext, TrainResult, register_method


def seeded_order(prompts: list, seed: int) -> list[int]:
    """Row indices with runs of adjacent rows of one prompt (a pair unpaired: desirable, undesirable) kept together
    and the runs shuffled by ``seed``. TRL's KTO samples in dataset order (its KL term pairs each row with its batch
    neighbours), so without this every seed trained the same model."""
    import random

    runs: list[list[int]] = []
    for i, prompt in enumerate(prompts):
        if runs and prompts[runs[-1][0]] == prompt:
            runs[-1].append(i)
        else:
            runs.append([i])
    random.Random(seed).shuffle(runs)
    return [i for run in runs for i in run]


@register_method("kto", family="unpaired", data=("kto",), needs_reference_model=True, config_class="trl:KTOConfig")
def train(ctx: TrainContext) -> TrainResult:
    from trl import KTOConfig, KTOTrainer

    from methods.common import (device_plan, load_dataset_file, load_policy, train_resuming, trainer_tokens_seen,
                                trl_config)

    model, tokenizer = load_policy(ctx.policy)
    reference, _ = load_policy(ctx.reference)
    plan = device_plan(ctx.block, f"methods.{ctx.method}")
    args = trl_config(KTOConfig, ctx.block["trainer"], plan=plan, out_dir=ctx.out_dir, seed=ctx.seed,
                      where=f"methods.{ctx.method}.trainer")
    rows = load_dataset_file(ctx.data["kto"], "kto_row").select_columns(["prompt", "completion", "label"])
    rows = rows.select(seeded_order(rows["prompt"], ctx.seed))
    trainer = KTOTrainer(model=model, ref_model=reference, args=args, train_dataset=rows, processing_class=tokenizer)
    train_resuming(trainer)
    return TrainResult(trainer.model, tokenizer, trainer_tokens_seen(trainer), plan,
                       metrics={"train_log": trainer.state.log_history})
