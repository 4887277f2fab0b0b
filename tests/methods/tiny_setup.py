"""Sizes and measurement helpers for the method tests (fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import torch

WORLD = {
    "seed": 0,
    "families": ["add", "larger", "upper", "sort", "reverse", "count"],
    "splits": {"pretrain": 60, "sft": 480, "prefs": 48, "reward_model": 192, "online": 12, "alpaca_eval": 2,
               "arena_hard": 2, "mt_bench": 2, "academic_gen": 2, "academic_mc": 2},
    "gold_reward": {"length_penalty": 0.2, "length_scale": 50},
    "annotator": {"temperature": 0.2, "verbosity_bias": 3.0, "length_scale": 50},
    "sft_styles": {"concise": 0.5, "verbose": 0.5},
    "pair_styles": {"concise": 0.3, "verbose": 0.3, "wrong": 0.15, "wrong_verbose": 0.1, "truncated": 0.1,
                    "off_format": 0.05},
    "baseline_styles": {"concise": 0.25, "verbose": 0.25, "wrong": 0.3, "wrong_verbose": 0.2},
}
ARCHITECTURE = {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
                "max_position_embeddings": 128}


def block(trainer: dict, batch: int = 8, **extra) -> dict:
    """A config block as in config/*.yaml (batch sizes + TRL config keys)."""
    return {"effective_batch_size": batch, "per_device_train_batch_size": batch,
            "trainer": {"logging_steps": 1, "max_length": 96, **trainer}, **extra}


def write_training_data(world: dict, out: Path) -> dict[str, Path]:
    """The training splits of the micro world's data stage (world/data.py), without the evaluation files."""
    import random

    from pipeline.io import write_jsonl
    from world.data import OUTPUTS, generate_items, kto_rows, labelled_pairs, pretrain_rows, sft_rows, user

    rng = random.Random(world["seed"] + 1)
    splits = generate_items(world)
    prefs = labelled_pairs(splits["prefs"], world, rng)
    files = {
        "pretrain": pretrain_rows(splits["pretrain"], world["sft_styles"], rng),
        "sft": sft_rows(splits["sft"], world["sft_styles"], rng),
        "prefs": prefs,
        "kto": kto_rows(prefs),
        "rm_prefs": labelled_pairs(splits["reward_model"], world, rng),
        "online_prompts": [{"prompt": user(it.instruction), "item_id": it.item_id, "gold": it.gold}
                           for it in splits["online"]],
    }
    for kind, rows in files.items():
        write_jsonl(out / OUTPUTS[kind], rows)
    return {kind: out / OUTPUTS[kind] for kind in files}


# ---------------------------------------------------------------------------------------------- measurements
def completion_logps(model_dir_or_model, tokenizer, prompts: list[list[dict]], completions: list[str],
                     average: bool = False) -> torch.Tensor:
    """log pi(completion | prompt) summed (or averaged) over the completion's tokens, EOS included, rendered with
    the chat template exactly as the trainers do."""
    from transformers import AutoModelForCausalLM

    model = (AutoModelForCausalLM.from_pretrained(model_dir_or_model) if isinstance(model_dir_or_model, (str, Path))
             else model_dir_or_model).eval()
    out = []
    for prompt, completion in zip(prompts, completions):
        prefix = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": completion}], tokenize=False)
        assert full.startswith(prefix)
        p_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0][len(p_ids) - 1:]
        out.append(logp.mean() if average else logp.sum())
    return torch.stack(out)


def mean_reward(policy_dir, reward_model_dir, prompts: list[list[dict]], *, n: int = 8, max_new_tokens: int = 24,
                temperature: float = 1.0, seed: int = 123) -> float:
    """Mean reward-model score of n sampled completions per prompt from the policy."""
    from methods.common import load_policy
    from methods.reward_model import RewardScorer
    from methods.sampling import sample_completions

    model, tokenizer = load_policy(policy_dir)
    completions, _, _ = sample_completions(model, tokenizer, prompts, n, max_new_tokens=max_new_tokens,
                                           temperature=temperature, seed=seed)
    scores = RewardScorer(reward_model_dir).score([p for p in prompts for _ in range(n)],
                                                  [c for cs in completions for c in cs])
    return sum(scores) / len(scores)


def implicit_margin(policy, reference, tokenizer, rows: list[dict], beta: float, average: bool = False) -> float:
    """beta * [(log pi - log pi_ref)(chosen) - (log pi - log pi_ref)(rejected)], averaged over the pairs; with
    average=True the log-probabilities are per-token means (IPO's normalisation in TRL)."""
    prompts = [r["prompt"] for r in rows]
    chosen = [r["chosen"][0]["content"] for r in rows]
    rejected = [r["rejected"][0]["content"] for r in rows]

    def ratio(completions):
        return (completion_logps(policy, tokenizer, prompts, completions, average)
                - completion_logps(reference, tokenizer, prompts, completions, average))

    return float(beta * (ratio(chosen) - ratio(rejected)).mean())


def train_online_and_measure(method: str, config: dict, world: dict, sft: Path, reward_model: Path,
                             out_dir: Path) -> tuple[dict, float, float]:
    """Train an online method through the generic entry point; return its provenance and the mean reward of the
    SFT policy and of the trained policy on the training prompts."""
    from methods.train import run
    from pipeline.io import read_jsonl

    record = run(method, config, seed=0, policy=sft, reference=sft, data={"online_prompts": world["online_prompts"]},
                 reward_model=reward_model, out_dir=out_dir)
    prompts = [r["prompt"] for r in read_jsonl(world["online_prompts"])]
    return record, mean_reward(sft, reward_model, prompts), mean_reward(out_dir, reward_model, prompts)
