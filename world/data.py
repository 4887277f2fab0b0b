"""Data stage of the micro world: seeded, disjoint splits written in TRL's and the upstream benchmarks' formats.

    python -m world.data --config-json '{...world block...}' --out-dir results/micro/data
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from pipeline.io import write_json, write_jsonl
from pipeline.logs import get_logger
from world.tasks import FAMILIES, Item, make_item
from world.truth import BiasedPreference, GoldReward, sample_style, synthesize
from pipeline.cli import run

log = get_logger("world.data")

# Files this stage writes, relative to its output folder (the Snakemake rule lists the same names).
OUTPUTS = {
    "pretrain": "pretrain.jsonl",
    "sft": "sft.jsonl",
    "prefs": "prefs.jsonl",
    "kto": "kto.jsonl",
    "rm_prefs": "rm_prefs.jsonl",
    "online_prompts": "online_prompts.jsonl",
    "eval_items": "eval_items.jsonl",
    "alpaca_eval_baseline": "alpaca_eval_baseline.json",
}
EVAL_SUITES = ("alpaca_eval", "arena_hard", "mt_bench", "academic_gen", "academic_mc")
TWO_TURN_SUITES = ("mt_bench",)


def generate_items(world: dict) -> dict[str, list[Item]]:
    """Draw unique items and deal them into disjoint splits (an instruction never appears in two splits)."""
    rng = random.Random(world["seed"])
    families = [FAMILIES[name] for name in world["families"]]
    seen: set[str] = set()
    splits: dict[str, list[Item]] = {}
    for split, count in world["splits"].items():
        items: list[Item] = []
        attempts = 0
        while len(items) < count:
            attempts += 1
            if attempts > 200 * count + 1000:
                raise ValueError(f"config key world.splits.{split}: cannot draw {count} unique items; lower it")
            family = families[len(items) % len(families)]
            item = make_item(rng, family, f"{split}-{len(items)}", two_turn=split in TWO_TURN_SUITES)
            if item.instruction in seen:
                continue
            seen.add(item.instruction)
            items.append(item)
        splits[split] = items
    return splits


def user(content: str) -> list[dict]:
    return [{"role": "user", "content": content}]


def assistant(content: str) -> list[dict]:
    return [{"role": "assistant", "content": content}]


def sft_rows(items: list[Item], styles: dict[str, float], rng: random.Random) -> list[dict]:
    return [
        {"messages": user(it.instruction) + assistant(synthesize(it.instruction, it.gold, sample_style(styles, rng), rng))}
        for it in items
    ]


def pretrain_rows(items: list[Item], styles: dict[str, float], rng: random.Random) -> list[dict]:
    return [
        {"text": f"{it.instruction}\n{synthesize(it.instruction, it.gold, sample_style(styles, rng), rng)}"}
        for it in items
    ]


def labelled_pairs(items: list[Item], world: dict, rng: random.Random) -> list[dict]:
    """Two candidates of different styles per prompt, labelled by the biased annotator."""
    gold_reward = GoldReward(**world["gold_reward"])
    annotator = BiasedPreference(**world["annotator"])
    styles = world["pair_styles"]
    rows = []
    for it in items:
        a, b = "", ""
        while a == b:
            a = synthesize(it.instruction, it.gold, sample_style(styles, rng), rng)
            b = synthesize(it.instruction, it.gold, sample_style(styles, rng), rng)
        p_a = annotator.probability(gold_reward(a, it.gold), gold_reward(b, it.gold), len(a), len(b))
        chosen, rejected = (a, b) if rng.random() < p_a else (b, a)
        rows.append({"prompt": user(it.instruction), "chosen": assistant(chosen), "rejected": assistant(rejected)})
    return rows


def kto_rows(pairs: list[dict]) -> list[dict]:
    """Unpaired labels from the annotator's pairs: chosen is desirable, rejected undesirable (TRL's convention)."""
    rows = []
    for pair in pairs:
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": True})
        rows.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": False})
    return rows


def baseline_outputs(items: list[Item], world: dict, rng: random.Random) -> list[dict]:
    """The fixed AlpacaEval baseline: a synthetic reference model of known quality, in AlpacaEval's format."""
    styles = world["baseline_styles"]
    return [
        {"instruction": it.instruction, "output": synthesize(it.instruction, it.gold, sample_style(styles, rng), rng),
         "generator": "baseline", "dataset": "micro_world"}
        for it in items
    ]


def write_world_data(world: dict, out_dir: Path) -> None:
    rng = random.Random(world["seed"] + 1)
    splits = generate_items(world)
    write_jsonl(out_dir / OUTPUTS["pretrain"], pretrain_rows(splits["pretrain"], world["sft_styles"], rng), "text_row")
    write_jsonl(out_dir / OUTPUTS["sft"], sft_rows(splits["sft"], world["sft_styles"], rng), "sft_row")
    prefs = labelled_pairs(splits["prefs"], world, rng)
    write_jsonl(out_dir / OUTPUTS["prefs"], prefs, "preference_row")
    write_jsonl(out_dir / OUTPUTS["kto"], kto_rows(prefs), "kto_row")
    write_jsonl(out_dir / OUTPUTS["rm_prefs"], labelled_pairs(splits["reward_model"], world, rng), "preference_row")
    online = [{"prompt": user(it.instruction), "item_id": it.item_id, "gold": it.gold} for it in splits["online"]]
    write_jsonl(out_dir / OUTPUTS["online_prompts"], online, "prompt_row")
    eval_items = [dict(it.to_json(), suite=suite) for suite in EVAL_SUITES for it in splits[suite]]
    write_jsonl(out_dir / OUTPUTS["eval_items"], eval_items, "item")
    write_json(out_dir / OUTPUTS["alpaca_eval_baseline"], baseline_outputs(splits["alpaca_eval"], world, rng),
               "alpaca_eval_outputs")
    log.info("wrote %s", ", ".join(f"{k}={len(v)}" for k, v in splits.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-json", required=True, help="the config's `world` block as JSON")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    write_world_data(json.loads(args.config_json), args.out_dir)


if __name__ == "__main__":
    run(main)
