"""Best-of-n (methods/best_of_n.py) through the real entry points: methods.train writes the rule folder, the
generation backend (evals/backends.py make_backend) applies it to the tiny SFT model, the tiny reward model reranks.
Guards against a best-of-n that does not pick the reward model's best (its chosen answers would score no higher than
n = 1), and against a rule folder whose generations are not in the suites' upstream formats."""

import json

from evals.backends import make_backend
from evals.generate import main as generate_main
from methods.train import run
from pipeline.io import read_json, read_jsonl, validate, write_json
from pipeline.provenance import INFERENCE_RULE, INFERENCE_TRACE, read_provenance, verify_checkpoint
from world.truth import GoldReward
from tiny_setup import WORLD

GENERATION = {"backend": "transformers", "max_new_tokens": 24, "batch_size": 64, "temperature": 0.0, "seed": 0}


def rule_folder(n, world, sft, reward_model, out):
    run(f"best_of_n_{n}", {"module": "best_of_n", "n": n, "sampling": {"temperature": 1.0}}, seed=0, policy=sft,
        reference=sft, data={}, reward_model=reward_model, out_dir=out)
    return out


def test_best_of_n_picks_higher_reward_than_one_sample(world, sft, reward_model, tmp_path):
    rows = read_jsonl(world["online_prompts"])
    conversations = [r["prompt"] for r in rows] * 3
    gold = GoldReward(**WORLD["gold_reward"])
    measured = {}
    for n in (1, 4):
        folder = rule_folder(n, world, sft, reward_model, tmp_path / f"best_of_n_{n}")
        record = verify_checkpoint(folder)
        assert record["parents"]["reward_model"]["checkpoint_hash"] == read_provenance(reward_model)["checkpoint_hash"]
        assert record["parents"]["policy"]["checkpoint_hash"] == read_provenance(sft)["checkpoint_hash"]
        assert record["inference_rule"]["n"] == n and record["inference_rule"]["sampling"]["temperature"] == 1.0
        backend = make_backend(folder, GENERATION)
        answers = backend.generate(conversations, max_new_tokens=24, temperature=0.0)
        chosen = [r["rewards"][r["chosen"]] for r in backend.records]
        assert all(len(r["candidates"]) == n and r["rewards"][r["chosen"]] == max(r["rewards"])
                   for r in backend.records)
        assert answers == [r["candidates"][r["chosen"]] for r in backend.records]
        measured[n] = {"rm": sum(chosen) / len(chosen),
                       "gold": sum(gold(a, rows[i % len(rows)]["gold"]) for i, a in enumerate(answers)) / len(answers)}
    print("best-of-n on the tiny fixtures (RM, gold):", json.dumps(measured))
    assert measured[4]["rm"] > measured[1]["rm"] + 0.1, measured


def test_generation_files_keep_the_upstream_format(world, sft, reward_model, tmp_path):
    folder = rule_folder(2, world, sft, reward_model, tmp_path / "best_of_n_2")
    assert (folder / INFERENCE_RULE).is_file() and not (folder / "model.safetensors").exists()
    rows = read_jsonl(world["online_prompts"])[:4]
    baseline = tmp_path / "alpaca_eval_baseline.json"
    write_json(baseline, [{"instruction": r["prompt"][0]["content"], "output": "x", "generator": "baseline",
                           "dataset": "micro"} for r in rows])
    out = tmp_path / "generations" / "best_of_n_2"
    generate_main(["--model-dir", str(folder), "--model", "best_of_n_2", "--suites", "alpaca_eval",
                   "--data", f"alpaca_eval_baseline={baseline}", "--generation-json", json.dumps(GENERATION),
                   "--evals-json", json.dumps({"alpaca_eval": {"judge": "oracle"}}), "--out-dir", str(out)])
    generations = read_json(out / "alpaca_eval.json")
    validate(generations, "alpaca_eval_outputs", str(out / "alpaca_eval.json"))
    assert [g["generator"] for g in generations] == ["best_of_n_2"] * 4
    trace = read_jsonl(out / INFERENCE_TRACE)
    assert [t["candidates"][t["chosen"]] for t in trace] == [g["output"] for g in generations]


def test_a_list_of_n_is_one_model_per_n():
    """Guards against a sweep that loses a value, keeps the list in a model's block, or silently collides with a
    configured name."""
    import pytest

    from pipeline.config import ConfigError, expand_sweeps, models

    methods = {"dpo": {"module": "dpo"}, "best_of_n": {"module": "best_of_n", "n": [1, 4, 8], "sampling": {}}}
    expanded = expand_sweeps(methods)
    assert list(expanded) == ["dpo", "best_of_n_1", "best_of_n_4", "best_of_n_8"]
    assert expanded["best_of_n_4"]["n"] == 4 and expanded["dpo"] is methods["dpo"]
    assert models({"methods": methods, "seeds": [0, 1]}) == ["sft", *(f"{m}-s{s}" for m in expanded for s in (0, 1))]
    with pytest.raises(ConfigError, match=r"methods\.best_of_n\.n: model name 'best_of_n_4' is already taken"):
        expand_sweeps({**methods, "best_of_n_4": {"module": "best_of_n", "n": 2}})


def test_config_errors_name_the_key():
    """Guards against a best-of-n block that the schema or the module's check lets through: n must be positive and
    the sampling settings known."""
    import copy

    import pytest
    import yaml

    from evals.registry import check_suite_blocks
    from methods.registry import check_method_blocks
    from pipeline.config import ConfigError, check_config
    from tests.study_configs import ROOT

    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    check_config(config, plugin_checks=[check_method_blocks, check_suite_blocks])
    bad = copy.deepcopy(config)
    bad["methods"]["best_of_n"]["n"] = [0, 4]
    with pytest.raises(ConfigError, match=r"key methods\.best_of_n\.n"):
        check_config(bad, plugin_checks=[check_method_blocks])
    bad = copy.deepcopy(config)
    bad["methods"]["best_of_n"]["sampling"] = {"temperature": 1.0, "top_k": 5}
    with pytest.raises(ConfigError, match=r"key methods\.best_of_n\.sampling"):
        check_config(bad, plugin_checks=[check_method_blocks])
