"""Generic training entry point: one method from its config block, saved with provenance.

    python -m methods.train --method ipo --block-json '{"module": "dpo", ...}' --seed 0 \
        --policy results/micro/models/sft --reference results/micro/models/sft \
        --data prefs=results/micro/data/prefs.jsonl [--reward-model DIR] --out-dir results/micro/models/ipo
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pipeline.io import InputError
from pipeline.logs import get_logger
from pipeline.cli import entry_point

log = get_logger("methods.train")


def parse_data(pairs: list[str]) -> dict[str, Path]:
    data = {}
    for pair in pairs:
        kind, sep, path = pair.partition("=")
        if not sep:
            raise InputError(f"--data {pair!r}: expected KIND=PATH")
        data[kind] = Path(path)
    return data


def run(method: str, block: dict, *, seed: int, policy: Path, reference: Path, data: dict[str, Path],
        reward_model: Path | None, out_dir: Path) -> dict:
    from methods.common import save_checkpoint
    from methods.registry import TrainContext, get_method
    from pipeline.provenance import verify_checkpoint

    spec = get_method(block.get("module", method))
    missing = [kind for kind in spec.data if kind not in data]
    if missing:
        raise InputError(f"method {method!r} ({spec.name}) needs data {missing}; got {sorted(data)}")
    if spec.needs_reward_model and reward_model is None:
        raise InputError(f"method {method!r} ({spec.name}) needs a reward model; none was given")
    for path in [*data.values(), policy, reference, *([reward_model] if reward_model else [])]:
        if not path.exists():
            raise InputError(f"method {method!r}: input {path} does not exist")
    for checkpoint in dict.fromkeys([policy, reference, *([reward_model] if reward_model else [])]):
        verify_checkpoint(checkpoint)  # a corrupt or half-written parent stops here, before hours of training
    started = time.time()
    ctx = TrainContext(method, block, policy, reference, {k: data[k] for k in spec.data}, reward_model, out_dir, seed)
    log.info("training %s (module %s) from %s", method, spec.name, policy)
    result = spec.train(ctx)
    if spec.family == "inference":
        return write_inference_rule(method, block, spec.name, result, seed=seed, policy=policy,
                                    reward_model=reward_model, out_dir=out_dir, started=started)
    parents = {"policy": policy}
    if spec.needs_reference_model or spec.family == "online":
        parents["reference"] = reference
    if reward_model is not None:
        parents["reward_model"] = reward_model
    record = save_checkpoint(result.model, result.tokenizer, out_dir, stage=method, config_block=block,
                             parents=parents, seed=seed, started=started, tokens_seen=result.tokens_seen,
                             plan=result.plan, extra={"module": spec.name, "metrics": _jsonable(result.metrics)})
    log.info("saved %s: %.1f s, %d tokens", out_dir, record["wall_time_s"], record["tokens_seen"])
    return record


def write_inference_rule(method: str, block: dict, module: str, rule, *, seed: int, policy: Path,
                         reward_model: Path | None, out_dir: Path, started: float) -> dict:
    """An inference-time method's "checkpoint": its rule (INFERENCE_RULE: the wrapper, the policy and reward model
    folders, the settings) and provenance naming the policy and reward model by hash. No weights: generation
    loads the policy and applies the rule (evals/backends.py make_backend)."""
    from pipeline.io import write_json
    from pipeline.provenance import INFERENCE_RULE, write_provenance

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / INFERENCE_RULE, {"method": method, "wrapper": rule.wrapper, "policy": str(policy),
                                     "reward_model": str(reward_model) if reward_model else None,
                                     "settings": rule.settings})
    parents = {"policy": policy, **({"reward_model": reward_model} if reward_model else {})}
    compute = {"device": "none (inference-time method: no training)", "world_size": 1, "effective_batch_size": 1,
               "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1, "device_hours": 0.0}
    record = write_provenance(out_dir, stage=method, config_block=block, parents=parents, seed=seed,
                              wall_time_s=time.time() - started, tokens_seen=0, compute=compute,
                              extra={"module": module, "inference_rule": rule.settings})
    log.info("wrote the inference rule of %s to %s", method, out_dir)
    return record


def _jsonable(metrics: dict) -> dict:
    return json.loads(json.dumps(metrics, default=float))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, help="the method's config name")
    parser.add_argument("--block-json", required=True, help="the method's config block as JSON")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--data", nargs="*", default=[], help="KIND=PATH pairs")
    parser.add_argument("--reward-model", type=Path)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    run(args.method, json.loads(args.block_json), seed=args.seed, policy=args.policy, reference=args.reference,
        data=parse_data(args.data), reward_model=args.reward_model, out_dir=args.out_dir)


if __name__ == "__main__":
    entry_point(main)
