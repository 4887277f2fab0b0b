"""World calibration: what the micro world's reward model has learnt, on held-out pairs of the world's own answer
styles (world/truth.py), split by what differs between the two answers:

- ``correctness``: the same length class, one correct and one wrong (``concise`` vs ``wrong``, ``verbose`` vs
  ``wrong_verbose``). Accuracy = the share of pairs in which the reward model scores the correct answer higher.
- ``length only``: both correct, one concise and one verbose. Accuracy = the share in which it scores the concise
  answer higher, as the gold reward does (it charges for every character beyond the gold answer); 1 - accuracy is
  how often the reward model prefers length that adds nothing.

The items come from a split the reward model never trained on (``--split``, default the AlpacaEval instructions),
regenerated from the study config's ``world:`` block exactly as the data stage draws them. The reward model is a
finished study's checkpoint (``results/<study>/models/reward_model``).

Then what the study's training pairs teach about correctness: for the offline preference pairs (the annotator's
labels) and each iterative-DPO round's best/worst pairs (the reward model's choice), the share of the pairs whose two
answers differ in correctness in which the chosen answer is the correct one (0.5: no correctness signal).

    python benchmarks/world_calibration.py --config config/config.yaml               # results/<study>/ of the config
    python benchmarks/world_calibration.py --config config/config.yaml config/overlays/sound_labels.yaml
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import yaml
from snakemake.utils import update_config

ROOT = Path(__file__).resolve().parents[1]
PAIRS = {"correctness": (("concise", "wrong"), ("verbose", "wrong_verbose")), "length only": (("concise", "verbose"),)}


def calibration_pairs(world: dict, split: str, seed: int = 0) -> dict[str, list[tuple[list[dict], str, str]]]:
    """kind -> (prompt messages, preferred answer, other answer) for every item of ``split`` and pair of styles;
    pairs whose two answers came out identical (a perturbation that changed nothing) are left out."""
    from pipeline.formats import user
    from world.data import generate_items
    from world.truth import synthesize

    items = generate_items(world)
    if split not in items:
        raise SystemExit(f"--split {split}: not a split of world.splits ({sorted(items)})")
    rng = random.Random(seed)
    pairs: dict[str, list] = {kind: [] for kind in PAIRS}
    for item in items[split]:
        for kind, style_pairs in PAIRS.items():
            for good, bad in style_pairs:
                a, b = synthesize(item.instruction, item.gold, good, rng), synthesize(item.instruction, item.gold, bad, rng)
                if a != b:
                    pairs[kind].append((user(item.instruction), a, b))
    return pairs


def calibration(world: dict, reward_model: Path, split: str) -> dict[str, dict]:
    """kind -> {n, accuracy, stderr, mean length difference (preferred minus other, characters)}."""
    from methods.reward_model import RewardScorer

    scorer = RewardScorer(reward_model)
    out = {}
    for kind, pairs in calibration_pairs(world, split).items():
        prompts = [p for p, _, _ in pairs]
        preferred = scorer.score(prompts, [a for _, a, _ in pairs])
        other = scorer.score(prompts, [b for _, _, b in pairs])
        wins = [float(x > y) for x, y in zip(preferred, other)]
        n = len(wins)
        accuracy = sum(wins) / n
        out[kind] = {"n": n, "accuracy": accuracy, "stderr": math.sqrt(accuracy * (1 - accuracy) / n),
                     "mean_length_difference": sum(len(a) - len(b) for _, a, b in pairs) / n}
    return out


def pair_correctness(pairs: list[dict], gold_of: dict[str, str]) -> dict[str, float | int]:
    """How often a set of training pairs teaches correctness: among the pairs whose chosen and rejected answers differ
    in correctness (the world's checker against the prompt's gold answer), the share whose chosen one is correct."""
    from world.tasks import is_correct

    differing = right = 0
    for pair in pairs:
        gold = gold_of[pair["prompt"][-1]["content"]]
        chosen, rejected = (is_correct(pair[k][-1]["content"], gold) for k in ("chosen", "rejected"))
        if chosen != rejected:
            differing += 1
            right += chosen
    return {"pairs": len(pairs), "differing": differing, "chosen_correct": right / differing if differing else math.nan}


def training_pairs(world: dict, results: Path) -> dict[str, dict]:
    """pair_correctness of what the study trained on: the offline preference pairs (the annotator's labels) and
    every iterative-DPO round's best/worst pairs (the reward model's choice), from the study's files."""
    from pipeline.io import read_jsonl
    from world.data import generate_items

    gold_of = {item.instruction: item.gold for split in generate_items(world).values() for item in split}
    gold_of.update((row["prompt"][-1]["content"], row["gold"])           # the data stage's online prompts, as trained on
                   for row in read_jsonl(results / "data" / "online_prompts.jsonl"))
    out = {"offline prefs (annotator)": pair_correctness(read_jsonl(results / "data" / "prefs.jsonl"), gold_of)}
    for path in sorted((results / "iterative").glob("iterative_dpo-s*/iter*/pairs.jsonl")):
        out[f"{path.parent.parent.name} {path.parent.name} (reward model)"] = pair_correctness(read_jsonl(path), gold_of)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, nargs="+", default=[ROOT / "config" / "config.yaml"],
                        help="the study's config files, later ones overlaid as Snakemake's --configfile does")
    parser.add_argument("--results", type=Path, help="the study folder (default: results/<study> of the config)")
    parser.add_argument("--split", default="alpaca_eval", help="a world split the reward model did not train on")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    config: dict = {}
    for path in args.config:
        update_config(config, yaml.safe_load(path.read_text()))
    results = args.results or ROOT / "results" / config["study"]
    reward_model = results / "models" / "reward_model"
    if not (reward_model / "provenance.json").is_file():
        raise SystemExit(f"{reward_model}: no finished reward model; run the study first")
    numbers = calibration(config["world"], reward_model, args.split)
    print(f"Reward model {reward_model} on held-out {args.split} items (b_ann = "
          f"{config['world']['annotator']['verbosity_bias']}):")
    print("| pairs | n | accuracy | ± SE | mean length difference (chars) |\n|---|---|---|---|---|")
    for kind, row in numbers.items():
        print(f"| {kind} | {row['n']} | {row['accuracy']:.3f} | {row['stderr']:.3f} | {row['mean_length_difference']:.1f} |")
    pairs = training_pairs(config["world"], results)
    print("\nWhat the training pairs teach: of the pairs whose two answers differ in correctness, the share whose "
          "chosen answer is the correct one")
    print("| pairs | n | differing in correctness | chosen correct |\n|---|---|---|---|")
    for name, row in pairs.items():
        print(f"| {name} | {row['pairs']} | {row['differing']} | {row['chosen_correct']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"reward_model": numbers, "training_pairs": pairs}, indent=1))


if __name__ == "__main__":
    main()
