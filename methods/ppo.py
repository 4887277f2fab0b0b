"""PPO (RLHF) with the Bradley-Terry reward model as the reward and a KL penalty to the SFT reference.

TRL 1.16 has no PPO trainer; methods/ppo_trainer.py is ours, in the shape of TRL's old PPOTrainer (see its docstring).
`trainer:` keys are PPOConfig fields (checked against the dataclass), plus `num_mini_batches` (as in TRL's old
PPOConfig). Batch sizes follow the other methods' invariant:
  effective_batch_size        rollouts per optimizer step, all devices (PPOConfig.mini_batch_size x devices)
  per_device_train_batch_size rollouts per forward/backward pass; gradient accumulation is derived from the devices
  trainer.num_mini_batches    optimizer steps per rollout batch (rollout batch = mini batch x num_mini_batches)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from methods.registry import TrainContext, TrainResult, register_method

EXTRA_KEYS = {"num_mini_batches"}
# Set from the device plan and the run, never from `trainer:`.
DERIVED_KEYS = {"per_device_train_batch_size", "mini_batch_size", "gradient_accumulation_steps", "seed",
                "output_dir", "use_cpu", "bf16"}


def ppo_config(trainer: dict, *, plan: dict, out_dir, seed: int, where: str):
    from methods.common import trainer_dir
    from methods.ppo_trainer import PPOConfig
    from pipeline.io import InputError

    valid = ({f.name for f in dataclasses.fields(PPOConfig)} | EXTRA_KEYS) - DERIVED_KEYS
    unknown = sorted(set(trainer) - valid)
    if unknown:
        raise InputError(f"config key {where}: {unknown} not accepted by PPOConfig (or set from the block/devices)")
    kwargs = dict(trainer)
    # resumable checkpoints every 10 % of the iterations by default (as the TRL trainers, methods/common.trl_config)
    kwargs.setdefault("save_steps", max(1, int(kwargs.get("num_rollout_steps", 100)) // 10))
    mini_batch = plan["per_device_train_batch_size"] * plan["gradient_accumulation_steps"]
    try:
        return PPOConfig(
            per_device_train_batch_size=mini_batch * int(kwargs.pop("num_mini_batches", 1)),
            mini_batch_size=mini_batch,
            gradient_accumulation_steps=plan["gradient_accumulation_steps"],
            seed=seed, output_dir=str(trainer_dir(out_dir)), use_cpu=plan["device"] == "cpu",
            bf16=plan["bf16"], disable_tqdm=True, **kwargs,
        )
    except ValueError as err:
        raise InputError(f"config key {where}: {err}") from None


@register_method("ppo", family="online", data=("online_prompts",), needs_reference_model=True,
                 needs_reward_model=True, needs_generation=True, config_class="methods.ppo_trainer:PPOConfig",
                 extra_trainer_keys=tuple(sorted(EXTRA_KEYS)))
def train(ctx: TrainContext) -> TrainResult:
    from methods.common import device_plan, load_dataset_file, load_policy, resume_point
    from methods.ppo_trainer import PPOTrainer
    from pipeline.provenance import read_provenance
    from methods.reward_model import RewardScorer

    policy, tokenizer = load_policy(ctx.policy)
    plan = device_plan(ctx.block, f"methods.{ctx.method}")
    reference, _ = load_policy(ctx.reference)
    if plan["bf16"]:   # frozen, inference only (under bf16 autocast anyway): half the memory of an fp32 copy per rank
        import torch

        reference.to(torch.bfloat16)
    config = ppo_config(ctx.block["trainer"], plan=plan, out_dir=ctx.out_dir, seed=ctx.seed,
                        where=f"methods.{ctx.method}.trainer")
    # The trainer works on rendered prompt strings; the reward model scores (messages, completion).
    messages = {tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True): row["prompt"]
                for row in load_dataset_file(ctx.data["online_prompts"], "prompt_row")}
    scorer = RewardScorer(ctx.reward_model)

    def reward_fn(prompts: list[str], completions: list[str]) -> list[float]:
        return scorer.score([messages[p] for p in prompts], completions)

    trainer = PPOTrainer(config, policy, reference, tokenizer, reward_fn, list(messages))
    fingerprint = {"config": config.to_dict(), "policy": read_provenance(ctx.policy)["checkpoint_hash"],
                   "prompts": len(messages)}
    last = resume_point(Path(config.output_dir), fingerprint, trainer.accelerator, marker=PPOTrainer.STATE_FILE)
    history = trainer.train(resume_from_checkpoint=str(last) if last is not None else None)
    return TrainResult(saved_policy(trainer, ctx.policy), tokenizer, trainer.tokens_seen, plan,
                       metrics={"train_log": history})


def saved_policy(trainer, start):
    """The trained policy as save_checkpoint saves it (rank 0). Under FSDP the policy's parameters are shards of the
    policy-and-value module: gather that module's full state dict (a collective) and load the policy's part into a
    CPU copy on rank 0. Not run here (FSDP needs GPUs)."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    from methods.common import load_policy

    if not isinstance(trainer.model, FullyShardedDataParallel):
        return trainer.policy
    state = trainer.accelerator.get_state_dict(trainer.model)
    if not trainer.accelerator.is_main_process:
        return trainer.policy            # not saved: rank 0 writes the checkpoint
    policy, _ = load_policy(start)
    policy.load_state_dict({k.removeprefix("policy."): v for k, v in state.items() if k.startswith("policy.")})
    return policy
