"""Iterative (online) DPO, as in the RLHF Workflow report: for t = 1..T, the current policy samples K responses per
online prompt, the reward model scores them, the best and the worst form a pair (ties and identical responses are
dropped), and DPO trains the next policy from the current one with the SFT model as the fixed reference.

The score is the reward model's r, or the length-penalised r - lambda * len(response in characters) when the
block's `length_penalty` (lambda) is > 0 (the report's Table 6 ablation). Config block keys:
  iterations (T), samples_per_prompt (K), length_penalty (lambda), missing_eos_penalty (subtracted from the score
  of a response that stopped at max_new_tokens without EOS; 0: off), sampling: {temperature, max_new_tokens,
  top_p, batch_size}, trainer: DPOConfig keys for each iteration (methods/dpo.py), batch sizes as for DPO.

Family "iterative": Snakemake runs it through workflow/rules/iterative.smk, one job per {iteration} (sample,
score, pair and train in one process, to pay the imports once) whose samples, pairs, stats and policy are files,
so a rerun resumes at the iteration it stopped in; a last job publishes the final policy:

    python -m methods.iterative_dpo iteration --method M --block-json J --seed 0 --iteration 1 \
        --policy results/micro/models/sft --reference results/micro/models/sft \
        --reward-model results/micro/models/reward_model --prompts results/micro/data/online_prompts.jsonl \
        --samples-dir results/micro/iterative/M/iter1 --out-dir results/micro/models/M/iter1
    python -m methods.iterative_dpo finalize --method M --block-json J --seed 0 --sft results/micro/models/sft \
        --reward-model results/micro/models/reward_model --iterations-root results/micro/iterative/M \
        --out-dir results/micro/models/M          # copies iter{T}: the policy generation and evaluation use

`train(ctx)` (methods/train.py) runs the same iterations in one process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from methods.registry import TrainContext, TrainResult, register_config_check, register_method
from pipeline.cli import entry_point
from pipeline.logs import get_logger

log = get_logger("methods.iterative_dpo")

SAMPLES, PAIRS, STATS = "samples.jsonl", "pairs.jsonl", "stats.json"
# per-round numbers the final provenance repeats (iterative DPO's pairs, RAFT's kept answers)
ROUND_STATS = ("pairs", "kept", "mean_reward", "mean_kept_reward", "mean_length_chars", "generated_tokens")


@register_config_check("iterative_dpo")
def check_block(block: dict, where: str) -> None:
    from methods.dpo import check_loss_type
    from methods.sampling import check_sampling

    check_sampling(block, where, "iterative_dpo")
    check_loss_type(block, where)


def iteration_dir(root: Path, iteration: int) -> Path:
    return Path(root) / f"iter{iteration}"


def selection_scores(row: dict, length_penalty: float, missing_eos_penalty: float = 0.0) -> list[float]:
    """What ranks a prompt's samples: r - length_penalty * len - missing_eos_penalty * [cut without EOS]."""
    finished = row.get("finished") or [True] * len(row["completions"])
    return [r - length_penalty * len(c) - (0.0 if f else missing_eos_penalty)
            for r, c, f in zip(row["rewards"], row["completions"], finished)]


def best_worst_pairs(samples: list[dict], length_penalty: float,
                     missing_eos_penalty: float = 0.0) -> tuple[list[dict], dict]:
    """One prompt/chosen/rejected row per prompt from its scored samples: argmax vs argmin of
    r - length_penalty * len - missing_eos_penalty * [stopped at max_new_tokens without EOS]; prompts whose best
    and worst tie, or are the same text, or whose best is an empty answer (a length penalty can rank one first),
    give no pair."""
    pairs, ties, identical, empty = [], 0, 0, 0
    for row in samples:
        scores = selection_scores(row, length_penalty, missing_eos_penalty)
        best = max(range(len(scores)), key=scores.__getitem__)
        worst = min(range(len(scores)), key=scores.__getitem__)
        if scores[best] == scores[worst]:
            ties += 1
            continue
        if row["completions"][best] == row["completions"][worst]:
            identical += 1
            continue
        if not row["completions"][best].strip():
            empty += 1
            continue
        pairs.append({
            "prompt": row["prompt"],
            "chosen": [{"role": "assistant", "content": row["completions"][best]}],
            "rejected": [{"role": "assistant", "content": row["completions"][worst]}],
            "chosen_score": scores[best], "rejected_score": scores[worst],
            **({"item_id": row["item_id"]} if "item_id" in row else {}),
        })
    return pairs, {"dropped_ties": ties, "dropped_identical": identical, "dropped_empty_chosen": empty}


def sample_stage(method: str, block: dict, *, seed: int, iteration: int, policy: Path, reward_model: Path,
                 prompts: Path, out_dir: Path, exchange: Path | None = None) -> dict:
    """Sample K responses per prompt from `policy`, score them with the reward model, write samples and pairs
    (several processes: methods.sampling.sample_and_score splits the prompts; rank 0 writes, the others wait)."""
    from methods.sampling import rank0_done, sample_and_score, wait_for_rank0
    from pipeline.io import InputError, read_json, write_json, write_jsonl

    started = time.time()
    result = sample_and_score(block, seed=seed, iteration=iteration, policy=policy, reward_model=reward_model,
                              prompts=prompts, exchange=exchange)
    if result is None:   # another rank: rank 0 writes the files this iteration's training reads
        wait_for_rank0(exchange)
        return read_json(out_dir / STATS)
    samples, sampled = result
    length_penalty = float(block.get("length_penalty", 0.0))
    missing_eos_penalty = float(block.get("missing_eos_penalty", 0.0))
    pairs, dropped = best_worst_pairs(samples, length_penalty, missing_eos_penalty)
    if not pairs:
        raise InputError(f"methods.{method}: iteration {iteration} gave no pairs (every prompt's samples tie); "
                         f"raise sampling.temperature or samples_per_prompt")
    stats = {
        **sampled, "pairs": len(pairs), **dropped, "length_penalty": length_penalty,
        "missing_eos_penalty": missing_eos_penalty,
        "mean_chosen_length_chars": sum(len(p["chosen"][0]["content"]) for p in pairs) / len(pairs),
        "mean_rejected_length_chars": sum(len(p["rejected"][0]["content"]) for p in pairs) / len(pairs),
        "wall_time_s": round(time.time() - started, 3),
    }
    write_jsonl(out_dir / SAMPLES, samples)
    write_jsonl(out_dir / PAIRS, pairs, schema="preference_row")
    write_json(out_dir / STATS, stats)
    rank0_done(exchange)
    log.info("iteration %d: %d prompts x %d samples, %d pairs, mean reward %.3f, mean length %.1f chars",
             iteration, stats["prompts"], stats["samples_per_prompt"], len(pairs), stats["mean_reward"], stats["mean_length_chars"])
    return stats


def train_stage(method: str, block: dict, *, seed: int, iteration: int, policy: Path, reference: Path,
                reward_model: Path, samples_dir: Path, out_dir: Path) -> dict:
    """DPO from the current policy on this iteration's pairs, the SFT model as reference; saved with provenance."""
    from methods.common import save_checkpoint
    from methods.dpo import train_dpo
    from pipeline.io import read_json

    started = time.time()
    result = train_dpo(method, block, policy=policy, reference=reference, prefs=samples_dir / PAIRS,
                       out_dir=out_dir, seed=seed)
    stats = read_json(samples_dir / STATS)
    return save_checkpoint(result.model, result.tokenizer, out_dir, stage=method, config_block=block,
                           parents={"policy": policy, "reference": reference, "reward_model": reward_model},
                           seed=seed, started=started, tokens_seen=result.tokens_seen, plan=result.plan,
                           extra={"module": "iterative_dpo", "iteration": iteration, "sampling": stats,
                                  "metrics": json.loads(json.dumps(result.metrics, default=float))})


def iteration_stage(method: str, block: dict, *, seed: int, iteration: int, policy: Path, reference: Path,
                    reward_model: Path, prompts: Path, samples_dir: Path, out_dir: Path) -> dict:
    """One iteration: sample and pair (files in samples_dir), then DPO (checkpoint in out_dir)."""
    from pipeline.io import InputError

    try:
        check_block(block, f"methods.{method}")
    except ValueError as err:
        raise InputError(str(err)) from None
    from methods.common import trainer_dir

    sample_stage(method, block, seed=seed, iteration=iteration, policy=policy, reward_model=reward_model,
                 prompts=prompts, out_dir=samples_dir, exchange=trainer_dir(out_dir) / "sampling")
    return train_stage(method, block, seed=seed, iteration=iteration, policy=policy, reference=reference,
                       reward_model=reward_model, samples_dir=samples_dir, out_dir=out_dir)


def finalize_stage(method: str, block: dict, *, seed: int, sft: Path, reward_model: Path, iterations_root: Path,
                   out_dir: Path, module: str = "iterative_dpo") -> dict:
    """The last iteration's policy becomes models/<method>; provenance sums every iteration's cost."""
    from pipeline.io import read_json
    from pipeline.provenance import read_provenance, write_provenance

    last = int(block["iterations"])
    runs = [read_provenance(iteration_dir(out_dir, i)) for i in range(1, last + 1)]
    stats = [read_json(iteration_dir(iterations_root, i) / STATS) for i in range(1, last + 1)]
    final = iteration_dir(out_dir, last)
    for path in final.iterdir():
        if path.is_file() and path.name != "provenance.json":
            shutil.copy2(path, out_dir / path.name)
    wall = sum(r["wall_time_s"] for r in runs) + sum(s["wall_time_s"] for s in stats)
    compute = dict(runs[-1]["compute"])
    compute["device_hours"] = round(wall / 3600 * compute["world_size"], 6)
    return write_provenance(
        out_dir, stage=method, config_block=block,
        parents={"policy": sft, "reference": sft, "reward_model": reward_model, "last_iteration": final},
        seed=seed, wall_time_s=wall, tokens_seen=sum(r["tokens_seen"] for r in runs), compute=compute,
        extra={"module": module, "iterations": [
            {"iteration": i + 1, "checkpoint_hash": r["checkpoint_hash"], "tokens_seen": r["tokens_seen"],
             **{k: s[k] for k in ROUND_STATS if k in s}}
            for i, (r, s) in enumerate(zip(runs, stats))]})


@register_method("iterative_dpo", family="iterative", data=("online_prompts",), needs_reference_model=True,
                 needs_reward_model=True, needs_generation=True, config_class="trl:DPOConfig")
def train(ctx: TrainContext) -> TrainResult:
    """Every iteration in one process (iteration files under out_dir/iter{t} and out_dir/iterative/iter{t})."""
    return run_iterations(ctx, iteration_stage)


def run_iterations(ctx: TrainContext, iteration_fn) -> TrainResult:
    """An iterative module's rounds in one process: ``iteration_fn`` (its iteration stage) for t = 1..T, each from
    the policy the previous one trained; the last policy is the result."""
    from methods.common import load_policy
    from pipeline.provenance import read_provenance

    policy, tokens = ctx.policy, 0
    for t in range(1, int(ctx.block["iterations"]) + 1):
        record = iteration_fn(ctx.method, ctx.block, seed=ctx.seed, iteration=t, policy=policy,
                              reference=ctx.reference, reward_model=ctx.reward_model,
                              prompts=ctx.data["online_prompts"],
                              samples_dir=iteration_dir(ctx.out_dir / "iterative", t),
                              out_dir=iteration_dir(ctx.out_dir, t))
        policy, tokens = iteration_dir(ctx.out_dir, t), tokens + record["tokens_seen"]
    model, tokenizer = load_policy(policy)
    compute = read_provenance(policy)["compute"]
    plan = {**{k: v for k, v in compute.items() if k not in ("precision", "device_hours")},
            "bf16": compute.get("precision", "fp32") != "fp32"}
    return TrainResult(model, tokenizer, tokens, plan, metrics={"last_iteration": str(policy)})


def main(argv: list[str] | None = None) -> None:
    iterative_main(argv, __doc__, iteration_stage, finalize_stage)


def iterative_main(argv: list[str] | None, doc: str, iteration_fn, finalize_fn) -> None:
    """The `iteration` / `finalize` command line of an iterative module (workflow/rules/iterative.smk)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["iteration", "finalize"])
    parser.add_argument("--method", required=True, help="the method's config name")
    parser.add_argument("--block-json", required=True, help="the method's config block as JSON")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--iteration", type=int, help="1..iterations (iteration)")
    parser.add_argument("--policy", type=Path, help="the policy this iteration starts from (iteration)")
    parser.add_argument("--reference", type=Path, help="the fixed reference: the SFT checkpoint (iteration)")
    parser.add_argument("--prompts", type=Path, help="online_prompts.jsonl (iteration)")
    parser.add_argument("--samples-dir", type=Path, help="where this iteration's samples and training data go (iteration)")
    parser.add_argument("--sft", type=Path, help="the SFT checkpoint (finalize)")
    parser.add_argument("--iterations-root", type=Path, help="folder of every iteration's samples (finalize)")
    parser.add_argument("--reward-model", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    block = json.loads(args.block_json)
    needed = {"iteration": ["iteration", "policy", "reference", "prompts", "samples_dir"],
              "finalize": ["sft", "iterations_root"]}[args.stage]
    missing = [f"--{name.replace('_', '-')}" for name in needed if getattr(args, name) is None]
    if missing:
        parser.error(f"stage {args.stage} needs {' '.join(missing)}")
    common = {"seed": args.seed, "reward_model": args.reward_model, "out_dir": args.out_dir}
    if args.stage == "iteration":
        iteration_fn(args.method, block, iteration=args.iteration, policy=args.policy, reference=args.reference,
                     prompts=args.prompts, samples_dir=args.samples_dir, **common)
    else:
        finalize_fn(args.method, block, sft=args.sft, iterations_root=args.iterations_root, **common)


if __name__ == "__main__":
    entry_point(main)
