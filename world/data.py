"""Data stage of the micro world: seeded, disjoint splits written in TRL's and the upstream benchmarks' formats.

    python -m world.data --config-json '{...world block...}' --out-dir results/micro/data
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from pipeline.formats import assistant, kto_rows, user
from pipeline.io import write_json, write_jsonl
from pipeline.logs import get_logger
from world.tasks import FAMILIES, Item, make_item
from world.truth import BiasedPreference, GoldReward, sample_style, synthesize
from pipeline.cli import entry_point

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
    "mt_bench_questions": "mt_bench_questions.jsonl",
    "mt_bench_reference": "mt_bench_reference.jsonl",
    "arena_hard_questions": "arena_hard_questions.jsonl",
    "arena_hard_baseline": "arena_hard_baseline.jsonl",
    "academic_gen": "academic_gen.jsonl",
    "academic_mc": "academic_mc.jsonl",
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




def baseline_outputs(items: list[Item], world: dict, rng: random.Random) -> list[dict]:
    """The fixed AlpacaEval baseline: a synthetic reference model of known quality, in AlpacaEval's format."""
    styles = world["baseline_styles"]
    return [
        {"instruction": it.instruction, "output": synthesize(it.instruction, it.gold, sample_style(styles, rng), rng),
         "generator": "baseline", "dataset": "micro_world"}
        for it in items
    ]


# MT-Bench (FastChat data/mt_bench/question.jsonl): question ids are integers; math, reasoning and coding questions
# have reference answers (here the gold answers), in a file of their own as FastChat's reference_answer/gpt-4.jsonl
# (FastChat never reads a `reference` field of the questions). Arena-Hard (v2.0 question.jsonl): string uids, and every micro
# question is a "hard_prompt" (the category judged with upstream's original system prompt).
MT_BENCH_REFERENCE_CATEGORIES = ("math", "reasoning", "coding")
ARENA_HARD_CATEGORY = "hard_prompt"
BASELINE_MODEL = "baseline"
REFERENCE_MODEL = "gold"          # MT-Bench's reference "model" (FastChat's is gpt-4)
MC_CHOICES = 4


def mt_bench_questions(items: list[Item]) -> list[dict]:
    """MT-Bench questions in FastChat's format, plus ``item_id`` (ours) naming the gold item."""
    rows = []
    for i, it in enumerate(items):
        rows.append({"question_id": i + 1, "category": it.category, "turns": list(it.turns), "item_id": it.item_id})
    return rows


def mt_bench_reference(items: list[Item]) -> list[dict]:
    """The reference answers of the math, reasoning and coding questions (the gold answers) in FastChat's
    ``reference_answer/gpt-4.jsonl`` format; question ids as ``mt_bench_questions`` numbers them."""
    return [{"question_id": i + 1, "answer_id": f"{REFERENCE_MODEL}-{i + 1}", "model_id": REFERENCE_MODEL,
             "choices": [{"index": 0, "turns": list(it.golds)}], "tstamp": 0.0}
            for i, it in enumerate(items) if it.category in MT_BENCH_REFERENCE_CATEGORIES]


def arena_hard_questions(items: list[Item]) -> list[dict]:
    """Arena-Hard questions in arena-hard-auto v2.0's format; the uid is the gold item's id."""
    return [{"uid": it.item_id, "category": ARENA_HARD_CATEGORY, "prompt": it.instruction} for it in items]


def arena_hard_baseline(items: list[Item], world: dict, rng: random.Random) -> list[dict]:
    """The fixed Arena-Hard baseline from the world's synthesizer, as arena-hard-auto v2.0 answers (the assistant
    content is ``{answer: ...}``; the Arena-Hard suite computes the style features of answers without ``metadata``)."""
    rows = []
    for it in items:
        text = synthesize(it.instruction, it.gold, sample_style(world["baseline_styles"], rng), rng)
        rows.append({"uid": it.item_id, "ans_id": f"{BASELINE_MODEL}-{it.item_id}", "model": BASELINE_MODEL,
                     "messages": user(it.instruction) + [{"role": "assistant", "content": {"answer": text}}],
                     "tstamp": 0.0})
    return rows


def academic_gen_rows(items: list[Item]) -> list[dict]:
    """The generate-until academic task (evals/lm_eval_tasks/micro_arith_gen.yaml): question and gold answer."""
    return [{"question": it.instruction, "answer": it.gold, "item_id": it.item_id} for it in items]


def academic_mc_rows(items: list[Item], rng: random.Random) -> list[dict]:
    """The multiple-choice academic task (micro_choice_mc.yaml): the gold answer among wrong ones, shuffled."""
    rows = []
    for it in items:
        choices = [it.gold]
        for _ in range(200):
            if len(choices) == MC_CHOICES:
                break
            wrong = synthesize(it.instruction, it.gold, "wrong", rng)
            if wrong not in choices:
                choices.append(wrong)
        rng.shuffle(choices)
        rows.append({"question": it.instruction, "choices": choices, "label": choices.index(it.gold),
                     "item_id": it.item_id})
    return rows


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
    # Evaluation files in the upstream benchmarks' formats, drawn from their own generator (the splits above and
    # the AlpacaEval baseline stay as they were when these were added).
    eval_rng = random.Random(world["seed"] + 2)
    write_jsonl(out_dir / OUTPUTS["mt_bench_questions"], mt_bench_questions(splits["mt_bench"]), "mt_bench_question")
    write_jsonl(out_dir / OUTPUTS["mt_bench_reference"], mt_bench_reference(splits["mt_bench"]), "mt_bench_answer")
    write_jsonl(out_dir / OUTPUTS["arena_hard_questions"], arena_hard_questions(splits["arena_hard"]),
                "arena_hard_question")
    write_jsonl(out_dir / OUTPUTS["arena_hard_baseline"], arena_hard_baseline(splits["arena_hard"], world, eval_rng),
                "arena_hard_answer")
    write_jsonl(out_dir / OUTPUTS["academic_gen"], academic_gen_rows(splits["academic_gen"]), "academic_gen_row")
    write_jsonl(out_dir / OUTPUTS["academic_mc"], academic_mc_rows(splits["academic_mc"], eval_rng), "academic_mc_row")
    log.info("wrote %s", ", ".join(f"{k}={len(v)}" for k, v in splits.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-json", required=True, help="the config's `world` block as JSON")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    write_world_data(json.loads(args.config_json), args.out_dir)


if __name__ == "__main__":
    entry_point(main)
