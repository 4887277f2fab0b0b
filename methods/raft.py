"""RAFT (reward-ranked fine-tuning; Dong et al. 2023), i.e. expert iteration, by the RLHF Workflow report's authors:
for t = 1..T, the current policy samples K responses per online prompt, the reward model scores them, the best one
per prompt is kept, and SFT (TRL SFTTrainer, loss on the assistant tokens) trains the next policy from the current
one on the kept answers. The same prompts, reward model, sampling and rounds as iterative DPO (methods/iterative_dpo.py),
so the two compare directly; only what is learnt from the scored samples differs (the best answer vs a best/worst pair).

The score that ranks a prompt's samples is iterative DPO's: r, or r - lambda * len(chars) with `length_penalty`, minus
`missing_eos_penalty` for a sample cut at max_new_tokens. Config block keys: iterations (T), samples_per_prompt (K),
length_penalty, missing_eos_penalty, sampling: {temperature, max_new_tokens, top_p, batch_size}, trainer: SFTConfig
keys for each round, batch sizes as for SFT.

Family "iterative": workflow/rules/iterative.smk runs one job per round (files: samples.jsonl, kept.jsonl, stats.json
under iterative/<method>/iter{t}, the policy under models/<method>/iter{t}), so a rerun resumes at the round it
stopped in; `finalize` publishes the last round's policy. Same command line as methods/iterative_dpo.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from methods.iterative_dpo import (SAMPLES, STATS, finalize_stage, iterative_main, run_iterations,
                                   selection_scores)
from methods.registry import TrainContext, TrainResult, register_config_check, register_method
from pipeline.cli import entry_point
from pipeline.logs import get_logger

log = get_logger("methods.raft")

KEPT = "kept.jsonl"


@register_config_check("raft")
def check_block(block: dict, where: str) -> None:
    from methods.sampling import check_sampling

    check_sampling(block, where, "raft")


def best_answers(samples: list[dict], length_penalty: float,
                 missing_eos_penalty: float = 0.0) -> tuple[list[dict], dict]:
    """One SFT conversation per prompt: the prompt and its highest-scoring sample (the reward model's choice); a
    prompt whose best sample is an empty answer (a length penalty can rank one first) keeps nothing."""
    kept, empty = [], 0
    for row in samples:
        scores = selection_scores(row, length_penalty, missing_eos_penalty)
        best = max(range(len(scores)), key=scores.__getitem__)
        if not row["completions"][best].strip():
            empty += 1
            continue
        kept.append({"messages": [*row["prompt"], {"role": "assistant", "content": row["completions"][best]}],
                     "reward": row["rewards"][best], "score": scores[best],
                     **({"item_id": row["item_id"]} if "item_id" in row else {})})
    return kept, {"dropped_empty": empty}


def iteration_stage(method: str, block: dict, *, seed: int, iteration: int, policy: Path, reference: Path,
                    reward_model: Path, prompts: Path, samples_dir: Path, out_dir: Path) -> dict:
    """One round: sample K per prompt and keep the best (files in samples_dir), then SFT on the kept answers from
    the current policy (checkpoint with provenance in out_dir)."""
    from methods.common import trainer_dir
    from methods.sampling import rank0_done, sample_and_score, wait_for_rank0
    from pipeline.io import InputError, write_json, write_jsonl

    try:
        check_block(block, f"methods.{method}")
    except ValueError as err:
        raise InputError(str(err)) from None
    started = time.time()
    exchange = trainer_dir(out_dir) / "sampling"
    result = sample_and_score(block, seed=seed, iteration=iteration, policy=policy, reward_model=reward_model,
                              prompts=prompts, exchange=exchange)
    if result is None:   # another rank (several processes): rank 0 writes the kept answers, all ranks train on them
        wait_for_rank0(exchange)
        return _train_round(method, block, seed=seed, iteration=iteration, policy=policy, reference=reference,
                            reward_model=reward_model, samples_dir=samples_dir, out_dir=out_dir)
    samples, sampled = result
    length_penalty = float(block.get("length_penalty", 0.0))
    missing_eos_penalty = float(block.get("missing_eos_penalty", 0.0))
    kept, dropped = best_answers(samples, length_penalty, missing_eos_penalty)
    if not kept:
        raise InputError(f"methods.{method}: round {iteration} kept no answer (every prompt's best sample is empty)")
    stats = {**sampled, "kept": len(kept), **dropped, "length_penalty": length_penalty,
             "missing_eos_penalty": missing_eos_penalty,
             "mean_kept_reward": sum(k["reward"] for k in kept) / len(kept),
             "mean_kept_length_chars": sum(len(k["messages"][-1]["content"]) for k in kept) / len(kept),
             "wall_time_s": round(time.time() - started, 3)}
    write_jsonl(samples_dir / SAMPLES, samples)
    write_jsonl(samples_dir / KEPT, kept, schema="sft_row")
    write_json(samples_dir / STATS, stats)
    rank0_done(exchange)
    log.info("round %d: %d prompts x %d samples, mean reward %.3f, kept answers' mean reward %.3f", iteration,
             stats["prompts"], stats["samples_per_prompt"], stats["mean_reward"], stats["mean_kept_reward"])
    return _train_round(method, block, seed=seed, iteration=iteration, policy=policy, reference=reference,
                        reward_model=reward_model, samples_dir=samples_dir, out_dir=out_dir)


def _train_round(method: str, block: dict, *, seed: int, iteration: int, policy: Path, reference: Path,
                 reward_model: Path, samples_dir: Path, out_dir: Path) -> dict:
    """SFT from the current policy on the round's kept answers (every rank), saved with provenance (rank 0)."""
    from methods.common import save_checkpoint
    from methods.sft import train as train_sft
    from pipeline.io import read_json

    started = time.time()
    result = train_sft(TrainContext(method, block, policy, reference, {"sft": samples_dir / KEPT}, None, out_dir,
                                    seed))
    stats = read_json(samples_dir / STATS)
    return save_checkpoint(result.model, result.tokenizer, out_dir, stage=method, config_block=block,
                           parents={"policy": policy, "reward_model": reward_model}, seed=seed, started=started,
                           tokens_seen=result.tokens_seen, plan=result.plan,
                           extra={"module": "raft", "iteration": iteration, "sampling": stats,
                                  "metrics": json.loads(json.dumps(result.metrics, default=float))})


def finalize(method: str, block: dict, **kwargs) -> dict:
    return finalize_stage(method, block, module="raft", **kwargs)


@register_method("raft", family="iterative", data=("online_prompts",), needs_reward_model=True,
                 needs_generation=True, config_class="trl:SFTConfig")
def train(ctx: TrainContext) -> TrainResult:
    """Every round in one process (round files under out_dir/iter{t} and out_dir/iterative/iter{t})."""
    return run_iterations(ctx, iteration_stage)


def main(argv: list[str] | None = None) -> None:
    iterative_main(argv, __doc__, iteration_stage, finalize)


if __name__ == "__main__":
    entry_point(main)
