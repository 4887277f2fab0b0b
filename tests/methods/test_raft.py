"""RAFT / expert iteration (methods/raft.py), one round exactly as workflow/rules/iterative.smk runs it. Guards against
a round that does not keep the reward model's best answers (their mean reward would not exceed the SFT samples'),
against kept files the SFT trainer cannot read, and against a finalize that publishes another round's policy."""

from methods.raft import KEPT, best_answers, finalize, iteration_stage
from pipeline.io import read_json, read_jsonl
from pipeline.provenance import read_provenance
from tiny_setup import block

BLOCK = block({"learning_rate": 5e-3, "max_steps": 4}, module="raft", iterations=1, samples_per_prompt=4,
              length_penalty=0.0, sampling={"temperature": 1.0, "max_new_tokens": 24, "batch_size": 64})


def test_one_round_keeps_the_reward_models_best(world, sft, reward_model, tmp_path):
    models, work = tmp_path / "models" / "raft", tmp_path / "iterative" / "raft"
    record = iteration_stage("raft", BLOCK, seed=0, iteration=1, policy=sft, reference=sft,
                             reward_model=reward_model, prompts=world["online_prompts"], samples_dir=work / "iter1",
                             out_dir=models / "iter1")
    stats = read_json(work / "iter1" / "stats.json")
    print("RAFT round 1 on the tiny fixtures: SFT samples' mean RM", stats["mean_reward"], "kept", stats["mean_kept_reward"])
    assert stats["mean_kept_reward"] > stats["mean_reward"] + 0.1, stats
    kept = read_jsonl(work / "iter1" / KEPT)
    samples = read_jsonl(work / "iter1" / "samples.jsonl")
    assert [k["reward"] for k in kept] == [max(s["rewards"]) for s in samples]
    assert record["tokens_seen"] > 0
    assert record["parents"]["policy"]["checkpoint_hash"] == read_provenance(sft)["checkpoint_hash"]
    final = finalize("raft", BLOCK, seed=0, sft=sft, reward_model=reward_model, iterations_root=work, out_dir=models)
    assert (models / "model.safetensors").read_bytes() == (models / "iter1" / "model.safetensors").read_bytes()
    assert final["module"] == "raft" and final["iterations"][0]["kept"] == len(kept)


def test_best_answers_follow_the_length_penalised_score():
    row = {"prompt": [{"role": "user", "content": "q"}], "completions": ["short", "a much, much longer answer"],
           "rewards": [1.0, 1.5]}
    assert best_answers([row], 0.0)[0][0]["messages"][-1]["content"] == "a much, much longer answer"
    assert best_answers([row], 0.05)[0][0]["messages"][-1]["content"] == "short"


def test_an_empty_best_answer_is_not_kept():
    """Bug guarded: a length penalty ranking an empty sample first made an empty SFT target, which the kept file's
    schema refuses, so the round (and the study) stopped (found on the default study's λ = 0.03 variant)."""
    row = {"prompt": [{"role": "user", "content": "q"}], "completions": ["", "an answer"], "rewards": [0.5, 1.0]}
    kept, dropped = best_answers([row, {**row, "rewards": [0.0, 1.5]}], 0.1)   # 0.5 > 1.0 - 0.1 * 9; 0 < 0.6
    assert dropped == {"dropped_empty": 1} and [k["messages"][-1]["content"] for k in kept] == ["an answer"]
