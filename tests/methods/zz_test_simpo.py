"""SimPO (methods/simpo.py, TRL CPOTrainer with loss_type simpo, cpo_alpha 0): reference-free, so its implicit
reward is beta * the length-normalised log-likelihood; the chosen-minus-rejected margin on the pairs rises."""

import pytest
from transformers import AutoTokenizer

from tiny_setup import block, completion_logps
from methods.registry import get_method
from methods.simpo import check_definition
from methods.train import run
from pipeline.io import read_jsonl
from pipeline.provenance import read_provenance


def normalised_margin(policy, tokenizer, rows):
    prompts = [r["prompt"] for r in rows]
    chosen = completion_logps(policy, tokenizer, prompts, [r["chosen"][0]["content"] for r in rows], average=True)
    rejected = completion_logps(policy, tokenizer, prompts, [r["rejected"][0]["content"] for r in rows], average=True)
    return float((chosen - rejected).mean())


def test_simpo_raises_the_length_normalised_margin(world, sft, tmp_path):
    trainer = {"learning_rate": 5e-3, "beta": 2.0, "simpo_gamma": 0.5, "max_steps": 12}
    record = run("simpo", block(trainer, module="simpo"), seed=0, policy=sft, reference=sft,
                 data={"prefs": world["prefs"]}, reward_model=None, out_dir=tmp_path / "simpo")
    rows = read_jsonl(world["prefs"])
    tokenizer = AutoTokenizer.from_pretrained(sft)
    before, after = normalised_margin(sft, tokenizer, rows), normalised_margin(tmp_path / "simpo", tokenizer, rows)
    assert after > before + 1000, (before, after)
    assert not get_method("simpo").needs_reference_model
    assert "reference" not in record["parents"]
    assert record["parents"]["policy"]["checkpoint_hash"] == read_provenance(sft)["checkpoint_hash"]
    assert record["tokens_seen"] > 0


def test_simpo_fixes_its_defining_keys():
    with pytest.raises(ValueError, match=r"methods\.simpo\.trainer\.cpo_alpha: SimPO fixes it to 0\.0"):
        check_definition({"trainer": {"cpo_alpha": 1.0}}, "methods.simpo")
