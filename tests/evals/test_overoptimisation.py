"""The over-optimisation analysis (evals/length_analysis.py) on a hand-built study folder: every point is computed
from the files it names. Guards against a point not traced to its files (a best-of-n reward-model score taken from
answers other than the AlpacaEval ones the gold reward was measured on, a round's gold from the wrong prompts) and
against a missing table or plot."""

import pandas as pd
import pytest

from evals.length_analysis import main
from pipeline.io import read_json, write_json, write_jsonl
from world.truth import GoldReward

GOLD = {"length_penalty": 0.2, "length_scale": 50}


def provenance(module, **extra):
    compute = {"device": "cpu", "world_size": 1, "effective_batch_size": 1, "per_device_train_batch_size": 1,
               "gradient_accumulation_steps": 1, "device_hours": 0.0}
    return {"stage": "m", "checkpoint_hash": "h", "config_hash": "c", "config": {}, "parents": {}, "git_commit": "g",
            "libraries": {}, "seed": 0, "wall_time_s": 0.0, "tokens_seen": 0, "compute": compute, "module": module,
            **extra}


def score(model, gold_reward, length):
    metric = lambda v: {"value": v, "stderr": None, "n": 2}
    return {"suite": "alpaca_eval", "model": model, "n": 2, "mean_length": length,
            "metrics": {"win_rate": metric(length / 2), "mean_length": metric(length),
                        "gold_reward": metric(gold_reward)}}


def test_points_come_from_the_files_they_name(tmp_path):
    r = tmp_path / "micro"
    user = lambda text: [{"role": "user", "content": text}]
    for n, rewards, gold in ((1, [[0.5], [0.1]], 0.4), (4, [[0.2, 1.5, 0.0, 0.3], [2.0, 0.1, 0.2, 0.3]], 0.1)):
        model = f"best_of_n_{n}-s0"
        write_json(r / "models" / model / "provenance.json", provenance("best_of_n", inference_rule={"n": n}))
        write_json(r / "scores" / model / "alpaca_eval.json", score(model, gold, 5.0 * n))
        trace = []
        for q, rs in zip(("q1", "q2"), rewards):
            best = max(range(n), key=rs.__getitem__)
            trace.append({"conversation": user(q), "candidates": [f"{q}-{i}" for i in range(n)], "rewards": rs,
                          "chosen": best})
        trace.append({"conversation": user("mt-bench turn"), "candidates": ["x"] * n, "rewards": [99.0] * n,
                      "chosen": 0})                       # another suite's conversation: not an AlpacaEval answer
        write_jsonl(r / "generations" / model / "inference_trace.jsonl", trace)
        write_json(r / "generations" / model / "alpaca_eval.json",
                   [{"instruction": t["conversation"][0]["content"], "output": t["candidates"][t["chosen"]],
                     "generator": model} for t in trace[:2]])
    for model in ("raft-s0", "raft-s1"):
        write_json(r / "models" / model / "provenance.json", provenance("raft"))
        write_json(r / "scores" / model / "alpaca_eval.json", score(model, 0.0, 7.0))
    write_jsonl(r / "data" / "online_prompts.jsonl", [{"prompt": user("2+2"), "item_id": "a", "gold": "4"}])
    rounds = {1: (["4", "The answer is 5."], [0.1, 0.3]), 2: (["4 " + "very " * 40, "4"], [1.2, 0.8])}
    for t, (completions, rewards) in rounds.items():
        for model, shift in (("raft-s0", 0.0), ("raft-s1", 1.0)):    # seed 1's rewards one higher
            write_jsonl(r / "iterative" / model / f"iter{t}" / "samples.jsonl",
                        [{"prompt": user("2+2"), "item_id": "a", "completions": completions,
                          "rewards": [x + shift for x in rewards]}])
    out = tmp_path / "tables"
    main(["--results", str(r), "--models", "best_of_n_1-s0", "best_of_n_4-s0", "raft-s0", "raft-s1", "--out-dir", str(out),
          "--gold-reward-json", '{"length_penalty": 0.2, "length_scale": 50}'])

    points = pd.read_csv(out / "overoptimisation.csv").set_index(["model", "step"])
    assert points.loc[("best_of_n_1-s0", 1), "rm_score"] == pytest.approx(0.3)
    assert points.loc[("best_of_n_4-s0", 4), "rm_score"] == pytest.approx((1.5 + 2.0) / 2)   # AlpacaEval answers only
    assert points.loc[("best_of_n_4-s0", 4), "gold_reward"] == pytest.approx(0.1)
    gold = GoldReward(**GOLD)
    for t, (completions, rewards) in rounds.items():
        assert points.loc[("raft-s0", t - 1), "rm_score"] == pytest.approx(sum(rewards) / 2)
        assert points.loc[("raft-s0", t - 1), "gold_reward"] == pytest.approx(sum(gold(c, "4") for c in completions) / 2)
        assert points.loc[("raft-s0", t - 1), "source"].startswith(f"iterative/raft-s0/iter{t}/samples.jsonl")
        # the variant's curve: the mean over its two seeds (seed 1's rewards are one higher), per-seed rows kept
        assert points.loc[("raft", t - 1), "rm_score"] == pytest.approx(sum(rewards) / 2 + 0.5)
        assert points.loc[("raft", t - 1), ["seed", "n_seeds"]].tolist() == ["mean", 2]
    assert (out / "overoptimisation.png").is_file()
    assert "Over-optimisation" in (out / "length_analysis.md").read_text()
    assert len(read_json(out / "length_analysis.json")["overoptimisation"]) == 6 + 4   # per seed, then means
