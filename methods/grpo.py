"""GRPO (TRL GRPOTrainer): `num_generations` samples per online prompt, rewards normalised within each group,
KL to the SFT reference with coefficient `beta`, loss aggregation by `loss_type` (all `trainer:` keys).

Reward (`reward:` in the config block, weights of the sources; a source with weight 0 is not computed):
  reward_model: the Bradley-Terry reward model (methods/reward_model.py RewardScorer), the default source;
  gold: the micro world's gold checker `world.tasks.is_correct` against the prompt's `gold` column (a verifiable
        reward, RLVR-style); off unless configured, since it reads ground truth no other method sees;
  missing_eos: -1 for a completion that stopped at max_completion_length without emitting EOS, else 0: its
        weight is the missing-EOS penalty (as TRL's OnlineDPOConfig.missing_eos_penalty and our PPO's).
Batch: `effective_batch_size` counts completions per optimizer step; it must be a multiple of `num_generations`.
"""

from __future__ import annotations

from methods.registry import TrainContext, TrainResult, register_config_check, register_method

REWARD_SOURCES = ("reward_model", "gold", "missing_eos")
DEFAULT_REWARD = {"reward_model": 1.0}


@register_config_check("grpo")
def check_block(block: dict, where: str) -> None:
    reward = block.get("reward", DEFAULT_REWARD)
    unknown = sorted(set(reward) - set(REWARD_SOURCES))
    if unknown:
        raise ValueError(f"config key {where}.reward: unknown sources {unknown}; expected some of {list(REWARD_SOURCES)}")
    if not any(float(w) for w in reward.values()):
        raise ValueError(f"config key {where}.reward: every weight is 0")
    if "reward_weights" in block.get("trainer", {}):
        raise ValueError(f"config key {where}.trainer.reward_weights: set the weights in {where}.reward instead")
    generations = int(block.get("trainer", {}).get("num_generations", 8))
    if int(block["effective_batch_size"]) % generations:
        raise ValueError(f"config key {where}.effective_batch_size: {block['effective_batch_size']} is not a "
                         f"multiple of trainer.num_generations ({generations})")


def reward_functions(reward: dict, reward_model_dir, eos_token_id: int | None = None) -> tuple[list, list[float]]:
    """GRPOTrainer reward callables (prompts, completions, **dataset columns) -> floats, and their weights."""
    from methods.reward_model import RewardScorer
    from world.tasks import is_correct

    def text(completion) -> str:
        return completion[-1]["content"] if isinstance(completion, list) else completion

    functions, weights = [], []
    if float(reward.get("reward_model", 0.0)):
        scorer = RewardScorer(reward_model_dir)

        def reward_model(prompts, completions, **_):
            return scorer.score(prompts, [text(c) for c in completions])

        functions.append(reward_model)
        weights.append(float(reward["reward_model"]))
    if float(reward.get("gold", 0.0)):
        def gold(prompts, completions, gold=None, **_):
            from pipeline.io import InputError

            if gold is None or any(g is None for g in gold):
                raise InputError("reward source 'gold' needs a `gold` column in online_prompts.jsonl")
            return [float(is_correct(text(c), g)) for c, g in zip(completions, gold)]

        functions.append(gold)
        weights.append(float(reward["gold"]))
    if float(reward.get("missing_eos", 0.0)):
        def missing_eos(prompts, completions, completion_ids=None, **_):
            # GRPOTrainer passes each completion's ids up to and including its first EOS
            return [0.0 if ids and ids[-1] == eos_token_id else -1.0 for ids in completion_ids]

        functions.append(missing_eos)
        weights.append(float(reward["missing_eos"]))
    return functions, weights


@register_method("grpo", family="online", data=("online_prompts",), needs_reference_model=True,
                 needs_reward_model=True, needs_generation=True, config_class="trl:GRPOConfig")
def train(ctx: TrainContext) -> TrainResult:
    from trl import GRPOConfig, GRPOTrainer

    from methods.common import (device_plan, load_dataset_file, load_policy, train_resuming, trainer_tokens_seen,
                                trl_config)
    from pipeline.io import InputError

    where = f"methods.{ctx.method}"
    try:
        check_block(ctx.block, where)
    except ValueError as err:
        raise InputError(str(err)) from None
    if ctx.policy.resolve() != ctx.reference.resolve():
        # GRPOTrainer loads its reference from the policy's own path (when beta > 0).
        raise InputError(f"method {ctx.method!r}: GRPO takes its reference from the starting policy; got policy "
                         f"{ctx.policy} and reference {ctx.reference}")
    if ctx.block["trainer"].get("use_vllm"):
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise InputError(f"config key {where}.trainer.use_vllm: TRL's vLLM modes (colocate and server) need vllm "
                             f"in the training environment, which keeps it in its own (envs/serve.txt); set it false "
                             f"(rollouts then use transformers on each rank's GPU)")
    model, tokenizer = load_policy(ctx.policy)
    functions, weights = reward_functions(ctx.block.get("reward", DEFAULT_REWARD), ctx.reward_model,
                                          tokenizer.eos_token_id)
    plan = device_plan(ctx.block, where)
    args = trl_config(GRPOConfig, {**ctx.block["trainer"], "reward_weights": weights}, plan=plan,
                      out_dir=ctx.out_dir, seed=ctx.seed, where=f"{where}.trainer")
    columns = ["prompt", "gold"] if "gold" in ctx.block.get("reward", {}) else ["prompt"]
    prompts = load_dataset_file(ctx.data["online_prompts"], "prompt_row")
    missing = [c for c in columns if c not in prompts.column_names]
    if missing:
        raise InputError(f"{ctx.data['online_prompts']}: columns {missing} missing (needed by {where}.reward)")
    trainer = GRPOTrainer(model=model, reward_funcs=functions, args=args, train_dataset=prompts.select_columns(columns),
                          processing_class=tokenizer)
    train_resuming(trainer)
    return TrainResult(trainer.model, tokenizer, trainer_tokens_seen(trainer), plan,
                       metrics={"train_log": trainer.state.log_history})
