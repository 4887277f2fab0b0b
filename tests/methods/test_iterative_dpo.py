"""Iterative DPO (methods/iterative_dpo.py), run iteration by iteration exactly as workflow/rules/iterative.smk does:
the samples of iteration 2 (drawn from the policy iteration 1 trained) score higher by the reward model than
those of iteration 1 (drawn from the SFT model); pairs are best vs worst with ties and duplicates dropped."""

import pytest

from methods.iterative_dpo import best_worst_pairs, finalize_stage, iteration_stage
from methods.registry import get_method
from methods.train import run
from pipeline.io import read_json, read_jsonl
from pipeline.provenance import read_provenance
from tiny_setup import block

BLOCK = block({"learning_rate": 5e-3, "beta": 0.1, "max_steps": 6}, module="iterative_dpo", iterations=2,
              samples_per_prompt=4, length_penalty=0.0,
              sampling={"temperature": 1.0, "max_new_tokens": 24, "batch_size": 64})


def test_later_iteration_scores_higher(world, sft, reward_model, tmp_path):
    models, work = tmp_path / "models" / "iterative_dpo", tmp_path / "iterative" / "iterative_dpo"
    policy = sft
    for t in (1, 2):
        record = iteration_stage("iterative_dpo", BLOCK, seed=0, iteration=t, policy=policy, reference=sft,
                                 reward_model=reward_model, prompts=world["online_prompts"],
                                 samples_dir=work / f"iter{t}", out_dir=models / f"iter{t}")
        assert read_json(work / f"iter{t}" / "stats.json")["pairs"] > 0
        assert (work / f"iter{t}" / "samples.jsonl").is_file() and (work / f"iter{t}" / "pairs.jsonl").is_file()
        assert record["parents"]["policy"]["checkpoint_hash"] == read_provenance(policy)["checkpoint_hash"]
        assert record["parents"]["reference"]["checkpoint_hash"] == read_provenance(sft)["checkpoint_hash"]
        policy = models / f"iter{t}"
    first, second = (read_json(work / f"iter{t}" / "stats.json") for t in (1, 2))
    assert second["mean_reward"] > first["mean_reward"] + 0.2, (first["mean_reward"], second["mean_reward"])

    final = finalize_stage("iterative_dpo", BLOCK, seed=0, sft=sft, reward_model=reward_model, iterations_root=work,
                           out_dir=models)
    assert (models / "model.safetensors").read_bytes() == (models / "iter2" / "model.safetensors").read_bytes()
    assert final["parents"]["policy"]["checkpoint_hash"] == read_provenance(sft)["checkpoint_hash"]
    assert final["parents"]["last_iteration"]["checkpoint_hash"] == read_provenance(models / "iter2")["checkpoint_hash"]
    assert final["tokens_seen"] == sum(read_provenance(models / f"iter{t}")["tokens_seen"] for t in (1, 2)) > 0
    rows = read_jsonl(work / "iter1" / "pairs.jsonl")
    assert all(r["chosen_score"] > r["rejected_score"] and r["chosen"] != r["rejected"] for r in rows)


def test_one_process_run_through_the_generic_entry_point(world, sft, reward_model, tmp_path):
    record = run("iterative_dpo", {**BLOCK, "iterations": 1}, seed=0, policy=sft, reference=sft,
                 data={"online_prompts": world["online_prompts"]}, reward_model=reward_model, out_dir=tmp_path / "m")
    assert (tmp_path / "m" / "iter1" / "provenance.json").is_file()
    assert record["parents"]["policy"]["checkpoint_hash"] == read_provenance(sft)["checkpoint_hash"]
    assert get_method("iterative_dpo").family == "iterative"   # routed to iterative.smk, not the `train` rule


def sample(rewards, completions):
    return {"prompt": [{"role": "user", "content": "q"}], "completions": completions, "rewards": rewards}


def test_best_worst_pairs_drop_ties_and_duplicates():
    pairs, dropped = best_worst_pairs([sample([1.0, 1.0], ["a", "b"]), sample([2.0, 0.0], ["x", "x"]),
                                       sample([0.5, 2.0, -1.0], ["m", "best", "worst"])], length_penalty=0.0)
    assert dropped == {"dropped_ties": 1, "dropped_identical": 1, "dropped_empty_chosen": 0}
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [("best", "worst")]


def test_an_empty_best_answer_gives_no_pair():
    """Bug guarded: the λ = 0.03 variant of the default study ranked an empty sample first (its length penalty is
    0) and wrote an empty chosen answer, which the pairs file's schema refuses: the study stopped."""
    pairs, dropped = best_worst_pairs([sample([0.5, 1.0, 0.2], ["", "an answer", "another answer, longer"]),
                                       sample([0.0, 1.0, 0.5], ["", "x", "another answer, longer"])], length_penalty=0.1)
    assert dropped["dropped_empty_chosen"] == 1
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [("x", "another answer, longer")]


def test_length_penalty_prefers_the_shorter_answer():
    row = sample([1.0, 1.5], ["short", "a much, much longer answer"])
    (plain,), _ = best_worst_pairs([row], length_penalty=0.0)
    (concise,), _ = best_worst_pairs([row], length_penalty=0.05)   # 1.5 - 0.05 * 26 < 1.0 - 0.05 * 5
    assert plain["chosen"][0]["content"] == "a much, much longer answer"
    assert concise["chosen"][0]["content"] == "short"
    assert concise["chosen_score"] == pytest.approx(1.0 - 0.05 * 5)


def test_sampling_settings_are_required():
    from methods.iterative_dpo import check_block

    with pytest.raises(ValueError, match=r"methods\.it\.sampling: missing \['max_new_tokens'\], unknown \['top_k'\]"):
        check_block({**BLOCK, "sampling": {"temperature": 1.0, "top_k": 5}}, "methods.it")


def test_missing_eos_penalty_prefers_a_finished_answer():
    """Guards against scoring a response cut at max_new_tokens as if complete: with missing_eos_penalty the
    truncated higher-reward sample loses to the finished one, and without it nothing changes."""
    row = {**sample([1.0, 1.4], ["finished.", "cut off mid-sent"]), "finished": [True, False]}
    (plain,), _ = best_worst_pairs([row], length_penalty=0.0)
    (penalised,), _ = best_worst_pairs([row], length_penalty=0.0, missing_eos_penalty=1.0)
    assert plain["chosen"][0]["content"] == "cut off mid-sent"
    assert penalised["chosen"][0]["content"] == "finished."
    assert penalised["rejected_score"] == pytest.approx(1.4 - 1.0)
