"""ORPO (methods/orpo.py, TRL's experimental ORPOTrainer): reference-free; the chosen-minus-rejected log-odds margin
(odds from the per-token mean log-likelihood, as in ORPO's loss) on the training pairs rises, by more than the
same training with the odds-ratio term off (beta = 0: SFT on the chosen answers only), and the chosen answers'
likelihood (ORPO's SFT term) rises too."""

import torch
from transformers import AutoTokenizer

from tiny_setup import block, completion_logps
from methods.registry import get_method
from methods.train import run
from pipeline.io import read_jsonl
from pipeline.provenance import read_provenance

TRAINER = {"learning_rate": 5e-3, "beta": 0.5, "max_steps": 24}


def log_odds(mean_logp: torch.Tensor) -> torch.Tensor:
    """log P/(1-P) with P = exp(mean per-token log-probability)."""
    return mean_logp - torch.log1p(-torch.exp(mean_logp))


def margin_and_chosen(policy, tokenizer, rows) -> tuple[float, float]:
    """Mean log-odds margin of chosen over rejected, and mean per-token log-likelihood of the chosen answers."""
    prompts = [r["prompt"] for r in rows]
    chosen = completion_logps(policy, tokenizer, prompts, [r["chosen"][0]["content"] for r in rows], average=True)
    rejected = completion_logps(policy, tokenizer, prompts, [r["rejected"][0]["content"] for r in rows], average=True)
    return float((log_odds(chosen) - log_odds(rejected)).mean()), float(chosen.mean())


def train(trainer, world, sft, out):
    return run("orpo", block(trainer, module="orpo"), seed=0, policy=sft, reference=sft,
               data={"prefs": world["prefs"]}, reward_model=None, out_dir=out)


def test_orpo_raises_the_log_odds_margin_beyond_its_sft_term(world, sft, tmp_path):
    """Guards against an ORPO whose odds-ratio term does nothing (a wrong beta key, pairs swapped, BOS-shifted
    tokens): its margin would move no more than SFT on the chosen answers moves it."""
    record = train(TRAINER, world, sft, tmp_path / "orpo")
    train({**TRAINER, "beta": 0.0}, world, sft, tmp_path / "sft_term_only")
    rows = read_jsonl(world["prefs"])
    tokenizer = AutoTokenizer.from_pretrained(sft)
    margin_before, chosen_before = margin_and_chosen(sft, tokenizer, rows)
    margin_after, chosen_after = margin_and_chosen(tmp_path / "orpo", tokenizer, rows)
    margin_sft_term, _ = margin_and_chosen(tmp_path / "sft_term_only", tokenizer, rows)
    assert margin_after > margin_before + 0.25, (margin_before, margin_after)
    assert margin_after > margin_sft_term + 0.15, (margin_sft_term, margin_after)
    assert chosen_after > chosen_before, (chosen_before, chosen_after)
    assert not get_method("orpo").needs_reference_model
    assert "reference" not in record["parents"]
    assert record["parents"]["policy"]["checkpoint_hash"] == read_provenance(sft)["checkpoint_hash"]
    assert record["tokens_seen"] > 0
