"""A local hub mirror for the rehearsal of the real study: every repository config/rlhf_workflow.yaml names, in the
hub's own layouts and schemas, with micro-world content, so the real config runs offline on CPU.

    python -m world.rehearsal_mirror --out results/rehearsal_hub [--world-config config/smoke.yaml]

Lives in world/ (not pipeline/): its content is the micro world dressed as the hub, and it needs transformers to
save the model, which pipeline/ may not import.

Written under ``<out>/<owner>/<name>/`` (the layout of ``huggingface-cli download --local-dir``):
- ``meta-llama/Meta-Llama-3-8B/``: a tiny Llama (``save_pretrained``: config.json, model.safetensors, tokenizer files)
  whose tokenizer, like Meta-Llama-3-8B's, has Llama-3's special tokens, prepends ``<|begin_of_text|>``, has no pad
  token and NO chat template;
- the datasets, each in its repository's files and columns (pipeline/hub_data.py reads them through ``data.mirror``);
- ``gold_items.jsonl`` (beside the repositories, not a hub file): the micro world's gold answers of every evaluation
  prompt, for the loopback oracle judge (evals/judges/oracle_server.py).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import yaml

from pipeline.cli import entry_point
from pipeline.formats import assistant, user
from pipeline.io import write_jsonl, write_text
from pipeline.logs import get_logger
from world.data import arena_hard_baseline, baseline_outputs, generate_items, labelled_pairs, mt_bench_questions, \
    mt_bench_reference, sft_rows
from world.tasks import ANSWER_PREFIX, Item
from world.truth import BiasedPreference, GoldReward, sample_style, synthesize

log = get_logger("world.rehearsal_mirror")

BASE_MODEL = "meta-llama/Meta-Llama-3-8B"
INSTRUCT_MODEL = "meta-llama/Meta-Llama-3-8B-Instruct"   # the report's reward-model start (reward_model.init)
ITERATION_PROMPTS = "RLHFlow/iterative-prompt-v1-iter{t}-20K"   # the report's per-iteration prompt sets
ITERATIONS = 3
GAMED_MODELS = ("gamed_verbose", "gamed_concise")          # df_gamed.csv's rows: the baseline made longer / shorter
GOLD_ITEMS = "gold_items.jsonl"
# Items per split: a rehearsal checks the real path, not learning (the overlay takes these rows, or fewer).
SPLITS = {"sft": 64, "prefs": 32, "reward_model": 32, "online": 16, "alpaca_eval": 8, "arena_hard": 6,
          "mt_bench": 4, "academic_train": 32, "academic": 8}
# Meta-Llama-3-8B's special tokens (a subset of its 256 reserved ones): what the Llama-3 chat template uses.
LLAMA3_BOS, LLAMA3_EOS = "<|begin_of_text|>", "<|end_of_text|>"
LLAMA3_SPECIAL = ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
TOKENIZER_VOCAB = 400
ARCHITECTURE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 128, "max_position_embeddings": 1024, "tie_word_embeddings": False}
NECTAR_ANSWERS = 4
DEFAULT_WORLD_CONFIG = Path(__file__).resolve().parent.parent / "config" / "smoke.yaml"


def write_parquet(path: Path, rows: list[dict]) -> None:
    """Rows as one parquet file, as the hub's converted datasets are."""
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(str(path))


def write_lines(path: Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def conversation(prompt: str, answer: str) -> list[dict]:
    return user(prompt) + assistant(answer)


def nectar_rows(items: list[Item], world: dict, rng: random.Random) -> list[dict]:
    """berkeley-nest/Nectar: an HH-style prompt and answers ranked 1 (best) .. n by the gold reward."""
    gold_reward = GoldReward(**world["gold_reward"])
    rows = []
    for it in items:
        answers = {synthesize(it.instruction, it.gold, sample_style(world["pair_styles"], rng), rng)
                   for _ in range(NECTAR_ANSWERS)}
        ranked = sorted(answers, key=lambda a: (-gold_reward(a, it.gold), a))
        rows.append({"prompt": f"\n\nHuman: {it.instruction}\n\nAssistant:", "answers": [
            {"answer": a, "model": f"model-{k}", "rank": float(k + 1)} for k, a in enumerate(ranked)],
            "turns": 1, "num_responses": len(ranked), "source": ["micro_world"], "good_natured": True})
    return rows


def write_datasets(root: Path, splits: dict[str, list[Item]], world: dict, seed: int) -> None:
    rng = random.Random(seed)
    write_parquet(root / "RLHFlow/RLHFlow-SFT-Dataset-ver2/data/train-00000-of-00001.parquet",
                  [dict(row, conversation_id=i) for i, row in enumerate(sft_rows(splits["sft"], world["sft_styles"], rng))])
    write_parquet(root / "berkeley-nest/Nectar/data/rlaif.parquet", nectar_rows(splits["prefs"], world, rng))
    write_parquet(root / "hendrydong/preference_700K/data/train-00000-of-00001.parquet", [
        {"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"], "chosen_score": 1.0,
         "rejected_score": 0.0} for r in labelled_pairs(splits["reward_model"], world, rng)])
    write_parquet(root / "RLHFlow/prompt-collection-v0.1/data/train-00000-of-00001.parquet", [
        {"dataset": "micro_world", "context": it.instruction, "context_messages": user(it.instruction),
         "id": it.item_id} for it in splits["online"]])
    online = splits["online"]
    for t in range(1, ITERATIONS + 1):   # disjoint thirds of the online prompts, as the report's three 20K sets
        write_parquet(root / ITERATION_PROMPTS.format(t=t) / "data/train-00000-of-00001.parquet", [
            {"context_messages": user(it.instruction), "id": it.item_id} for it in online[t - 1::ITERATIONS]])
    baseline = [dict(r, generator="gpt4_1106_preview", dataset="helpful_base")
                for r in baseline_outputs(splits["alpaca_eval"], world, rng)]
    write_text(root / "tatsu-lab/alpaca_eval/alpaca_eval_gpt4_baseline.json", json.dumps(baseline, indent=2))
    write_text(root / "tatsu-lab/alpaca_eval/df_gamed.csv", gamed_csv(splits["alpaca_eval"], baseline, world, rng))
    write_lines(root / "lmsys/mt-bench/data/mt_bench/reference_answer/gpt-4.jsonl",
                mt_bench_reference(splits["mt_bench"]))
    # FastChat's question.jsonl with `turns` renamed `prompt` and an empty `reference` list where there is none.
    write_lines(root / "HuggingFaceH4/mt_bench_prompts/raw/question.jsonl", [
        {"question_id": q["question_id"], "category": q["category"], "prompt": q["turns"],
         "reference": q.get("reference", [])} for q in mt_bench_questions(splits["mt_bench"])])
    write_parquet(root / "lmarena-ai/arena-hard-auto-v0.1/data/train-00000-of-00001.parquet", [
        {"question_id": it.item_id, "category": "arena-hard-v0.1", "cluster": it.family,
         "turns": [{"content": it.instruction}]} for it in splits["arena_hard"]])
    write_lines(root / "lmarena-ai/arena-hard-auto/data/arena-hard-v0.1/model_answer/gpt-4-0314.jsonl", [
        dict(a, ans_id=f"gpt-4-0314-{a['uid']}", model="gpt-4-0314")   # arena-hard-auto's v2 answer format, as the hub
        for a in arena_hard_baseline(splits["arena_hard"], world, rng)])
    write_jsonl(root / GOLD_ITEMS, [dict(it.to_json(), suite=suite) for suite in ("alpaca_eval", "arena_hard", "mt_bench")
                                    for it in splits[suite]], "item")


def gamed_csv(items: list[Item], baseline: list[dict], world: dict, rng: random.Random) -> str:
    """AlpacaEval's df_gamed.csv in its columns: for each instruction (``index`` = its position in the baseline file)
    the baseline made verbose and made concise, judged against the baseline by the world's annotator (preference in
    [0, 1] as upstream stores it), with a per-instruction difficulty. Synthetic: the real file is fitted on GPT-4's
    annotations of AlpacaEval's 805 instructions."""
    import pandas as pd

    gold_reward, annotator = GoldReward(**world["gold_reward"]), BiasedPreference(**world["annotator"])
    golds = {it.instruction: it.gold for it in items}
    difficulty = [rng.gauss(0.0, 1.0) for _ in baseline]
    rows = []   # model-major, as upstream's file: the first model's rows are labelled 0..n-1 (the difficulty lookup)
    for model, style in zip(GAMED_MODELS, ("verbose", "concise")):
        for index, row in enumerate(baseline):
            gold = golds[row["instruction"]]
            output = synthesize(row["instruction"], gold, style, rng)
            p_wins = annotator.probability(gold_reward(output, gold), gold_reward(row["output"], gold), len(output),
                                           len(row["output"]))
            rows.append({"model": model, "index": index, "preference": round(p_wins, 6),
                         "delta_len": len(output) - len(row["output"]), "not_gamed_baseline": False,
                         "instruction_difficulty": round(difficulty[index], 6)})
    frame = pd.DataFrame(rows)
    frame["std_delta_len"] = frame["delta_len"] / (frame["delta_len"].std() or 1.0)
    return frame.drop(columns=["delta_len"]).to_csv(index=False)


def hub_card(configs: dict[str, dict[str, str]]) -> str:
    """A dataset card whose YAML header maps configs to data files (how hub repositories declare their configs)."""
    header = {"configs": [{"config_name": name, "data_files": [{"split": split, "path": path}
                                                                for split, path in files.items()]}
                          for name, files in configs.items()]}
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n"


def write_config_splits(repo: Path, config: str, splits: dict[str, list[dict]]) -> dict[str, str]:
    for split, rows in splits.items():
        write_parquet(repo / config / f"{split}-00000-of-00001.parquet", rows)
    return {split: f"{config}/{split}-*" for split in splits}


def choices_of(it: Item, rng: random.Random) -> list[str]:
    """The gold answer among wrong ones, shuffled (as world.data.academic_mc_rows)."""
    choices = [it.gold]
    while len(choices) < 4:
        wrong = synthesize(it.instruction, it.gold, "wrong", rng)
        choices += [wrong] if wrong not in choices else []
    rng.shuffle(choices)
    return choices


def write_academic(root: Path, train: list[Item], test: list[Item], seed: int) -> None:
    """lm-eval's task datasets (the repositories its task YAMLs name, in their columns): gsm8k, ARC, TruthfulQA."""
    rng = random.Random(seed)
    gsm8k = lambda items: [{"question": it.instruction, "answer": f"{ANSWER_PREFIX}{it.gold}.\n#### {it.gold}"}  # noqa: E731
                           for it in items]
    repo = root / "openai/gsm8k"
    write_text(repo / "README.md", hub_card({"main": write_config_splits(repo, "main", {
        "train": gsm8k(train), "test": gsm8k(test)})}))

    def arc(items: list[Item]) -> list[dict]:
        rows = []
        for it in items:
            choices = choices_of(it, rng)
            rows.append({"id": it.item_id, "question": it.instruction, "answerKey": "ABCD"[choices.index(it.gold)],
                         "choices": {"text": choices, "label": list("ABCD")}})
        return rows
    repo = root / "allenai/ai2_arc"
    write_text(repo / "README.md", hub_card({"ARC-Challenge": write_config_splits(repo, "ARC-Challenge", {
        "train": arc(train), "validation": arc(train[:4]), "test": arc(test)})}))

    def truthful(items: list[Item]) -> list[dict]:
        rows = []
        for it in items:
            choices = [it.gold] + [c for c in choices_of(it, rng) if c != it.gold]
            rows.append({"question": it.instruction,
                         "mc1_targets": {"choices": choices, "labels": [1, 0, 0, 0]},
                         "mc2_targets": {"choices": choices, "labels": [1, 0, 0, 0]}})
        return rows
    repo = root / "truthfulqa/truthful_qa"
    write_text(repo / "README.md", hub_card({"multiple_choice": write_config_splits(repo, "multiple_choice", {
        "validation": truthful(test)})}))


def write_base_model(out: Path, splits: dict[str, list[Item]], seed: int) -> None:
    """A tiny, untrained Llama shaped like Meta-Llama-3-8B's checkpoint: its tokenizer has no chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from world.tokenizer import train_tokenizer

    texts = [t for items in splits.values() for it in items for t in (*it.turns, *it.golds)]
    texts += [synthesize(it.instruction, it.gold, style, random.Random(seed)) for it in splits["sft"]
              for style in ("concise", "verbose")]
    tokenizer = train_tokenizer(texts, TOKENIZER_VOCAB, pad=None, eos=LLAMA3_EOS, bos=LLAMA3_BOS,
                                extra_special=LLAMA3_SPECIAL, chat_template=None, add_bos=True)
    tokenizer.padding_side = "right"  # Meta's default
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, **ARCHITECTURE))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    from methods.base_model import apply_chat_template   # the Instruct model: the same weights with its template

    apply_chat_template(model, tokenizer, "llama3", where="rehearsal mirror")
    model.save_pretrained(out.parent / INSTRUCT_MODEL.split("/")[1])
    tokenizer.save_pretrained(out.parent / INSTRUCT_MODEL.split("/")[1])


def build_mirror(root: Path, world: dict, splits: dict[str, int] | None = None) -> Path:
    """Write the whole mirror under ``root``; returns the gold items file."""
    world = dict(world, splits=dict(splits or SPLITS))
    items = generate_items(world)
    write_datasets(root, items, world, world["seed"])
    write_academic(root, items["academic_train"], items["academic"], world["seed"])
    write_base_model(root / BASE_MODEL, items, world["seed"])
    log.info("mirror at %s: %s", root, ", ".join(f"{k}={len(v)}" for k, v in items.items()))
    return root / GOLD_ITEMS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="the mirror root (data.mirror)")
    parser.add_argument("--world-config", type=Path, default=DEFAULT_WORLD_CONFIG,
                        help="a micro-world config whose `world` block generates the content")
    args = parser.parse_args(argv)
    build_mirror(args.out, yaml.safe_load(args.world_config.read_text())["world"])


if __name__ == "__main__":
    entry_point(main)
