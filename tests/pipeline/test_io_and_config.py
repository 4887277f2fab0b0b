"""Bad input stops with one clear message naming the key, file or row."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from methods.registry import check_method_blocks
from evals.registry import check_suite_blocks
from pipeline.config import (ConfigError, check_config, expand_sweeps, models, seeded_name,
                             seeds_from_command_line, split_seeded, variants)
from pipeline.io import InputError, read_jsonl, write_jsonl
from tests.study_configs import study_configs

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("name", [p.name for p in study_configs()])
def test_every_shipped_config_validates(name):
    check_config(yaml.safe_load((ROOT / "config" / name).read_text()), name,
                 plugin_checks=[check_method_blocks, check_suite_blocks])


def test_unknown_key_is_named():
    config = copy.deepcopy(DEFAULT)
    config["world"]["annotator"]["verbosity"] = 1.0
    with pytest.raises(ConfigError, match=r"key world\.annotator: .*'verbosity' was unexpected"):
        check_config(config, plugin_checks=[check_method_blocks])


def test_wrong_type_is_named():
    config = copy.deepcopy(DEFAULT)
    config["generation"]["max_new_tokens"] = "many"
    with pytest.raises(ConfigError, match=r"key generation\.max_new_tokens: 'many' is not of type 'integer'"):
        check_config(config, plugin_checks=[check_method_blocks])


def test_unknown_method_lists_registered_methods():
    config = copy.deepcopy(DEFAULT)
    config["methods"]["dpo"]["module"] = "dpx"
    with pytest.raises(ConfigError, match=r"methods\.dpo\.module: unknown method 'dpx' \(did you mean 'dpo'\?\); registered methods: \[.*'dpo'.*'sft'.*\]"):
        check_config(config, plugin_checks=[check_method_blocks])


def test_judge_reference_must_exist():
    config = copy.deepcopy(DEFAULT)
    config["evals"]["alpaca_eval"]["judge"] = "gpt4"
    with pytest.raises(ConfigError, match=r"evals\.alpaca_eval\.judge: 'gpt4' is not a key of judges"):
        check_config(config, plugin_checks=[check_method_blocks])


def test_corrupt_jsonl_row_is_named(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}], '
                    '"rejected": [{"role": "assistant", "content": "b"}]}\n{"prompt": [\n')
    with pytest.raises(InputError, match=r"prefs\.jsonl, row 2: not valid JSON"):
        read_jsonl(path, schema="preference_row")


def test_row_violating_its_schema_is_named(tmp_path):
    path = tmp_path / "kto.jsonl"
    write_jsonl(path, [{"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}],
                        "label": "yes"}])
    with pytest.raises(InputError, match=r"kto\.jsonl, row 1: field 'label': 'yes' is not of type 'boolean'"):
        read_jsonl(path, schema="kto_row")


def test_entry_point_reports_missing_file_in_one_line(tmp_path):
    missing = tmp_path / "alpaca_eval.json"
    proc = subprocess.run(
        [sys.executable, "-m", "evals.evaluate", "--model", "sft", "--evals-json", '{"alpaca_eval": {"judge": "oracle"}}',
         "--generations-dir", str(tmp_path), "--items", str(tmp_path / "i.jsonl"), "--judge-cache", str(tmp_path / "c"),
         "--judgments-dir", str(tmp_path / "j"), "--scores-dir", str(tmp_path / "s")],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {missing}: file not found"


def test_wrong_loss_type_fails_at_config_time():
    config = copy.deepcopy(DEFAULT)
    config["methods"]["ipo"]["trainer"]["loss_type"] = "ipp"
    with pytest.raises(ConfigError, match=r"methods\.ipo\.trainer\.loss_type.*'ipp'"):
        check_config(config, plugin_checks=[check_method_blocks])


# ------------------------------------------------------------------ refused at config time, before any job
def refused(mutate, pattern, plugin=True):
    config = copy.deepcopy(DEFAULT)
    mutate(config)
    with pytest.raises(ConfigError, match=pattern):
        check_config(config, plugin_checks=[check_method_blocks] if plugin else [])


def test_typo_in_a_trainer_key_is_refused_at_config_time():
    """Bug guarded: a misspelt TRL key (`learning_rat`) passed `snakemake -n` and failed hours later in its job."""
    refused(lambda c: c["methods"]["dpo"]["trainer"].update(learning_rat=1e-3),
            r"key methods\.dpo\.trainer\.learning_rat: not a field of DPOConfig \(did you mean 'learning_rate'\?\)")


def test_reward_model_and_pretrain_trainer_keys_are_checked_too():
    """Bug guarded: only method blocks checked; the reward model's RewardConfig keys failed in its job."""
    refused(lambda c: c["reward_model"]["trainer"].update(max_stepz=3),
            r"key reward_model\.trainer\.max_stepz: not a field of RewardConfig")
    refused(lambda c: c["base"]["pretrain"]["trainer"].update(lr=3),
            r"key base\.pretrain\.trainer\.lr: not a field of SFTConfig")


def test_ppo_extra_key_passes_and_derived_key_is_refused():
    """Bug guarded: the generic class check rejecting PPO's num_mini_batches, or letting a derived batch key in."""
    check_config(copy.deepcopy(DEFAULT), plugin_checks=[check_method_blocks])  # ppo block uses num_mini_batches
    refused(lambda c: c["methods"]["ppo"]["trainer"].update(mini_batch_size=4),
            r"key methods\.ppo\.trainer\.mini_batch_size: not a field of PPOConfig.*set from the block")


def test_batch_that_does_not_divide_is_refused_at_config_time():
    """Bug guarded: effective_batch_size 10 with per-device 4 accepted by -n, failing when the job starts."""
    refused(lambda c: c["methods"]["dpo"].update(effective_batch_size=10, per_device_train_batch_size=4),
            r"key methods\.dpo\.effective_batch_size: 10 is not a multiple of per_device_train_batch_size \(4\)")


@pytest.mark.parametrize("key, value, pattern", [
    ("learning_rate", -1e-4, r"key methods\.dpo\.trainer\.learning_rate: -0\.0001 is less than or equal to the minimum of 0"),
    ("max_steps", 0, r"key methods\.dpo\.trainer\.max_steps: "),
    ("beta", -0.1, r"key methods\.dpo\.trainer\.beta: -0\.1 is less than the minimum of 0"),
])
def test_out_of_range_trainer_value_is_refused(key, value, pattern):
    """Bug guarded: a negative learning rate (or zero steps, negative beta) trained happily or failed late."""
    refused(lambda c: c["methods"]["dpo"]["trainer"].update({key: value}), pattern, plugin=False)


def test_nan_anywhere_is_refused_naming_the_key():
    """Bug guarded: `temperature: .nan` passed the schema (NaN is a float) and sampled garbage."""
    refused(lambda c: c["generation"].update(temperature=float("nan")),
            r"key generation\.temperature: NaN or infinity; expected a finite number", plugin=False)
    refused(lambda c: c["methods"]["dpo"]["trainer"].update(loss_weights=[1.0, float("inf")]),
            r"key methods\.dpo\.trainer\.loss_weights\.1: NaN or infinity", plugin=False)


def test_empty_methods_is_refused():
    """Bug guarded: `methods: {}` ran base, SFT and reward model, then made tables with no method."""
    refused(lambda c: c.update(methods={}), r"key methods: \{\} should be non-empty", plugin=False)


def test_module_given_as_a_path_is_refused():
    """Bug guarded: `module: ../x` ended in a raw ModuleNotFoundError traceback."""
    refused(lambda c: c["methods"]["dpo"].update(module="../x"), r"key methods\.dpo\.module: '\.\./x' does not match",
            plugin=False)


def test_duplicate_yaml_key_is_refused_naming_file_line_and_key(tmp_path):
    """Bug guarded: two `dpo:` blocks under methods, the last silently winning."""
    from pipeline.config import load_config_file

    path = tmp_path / "study.yaml"
    path.write_text("study: x\nmethods:\n  dpo: {module: dpo}\n  kto: {}\n  dpo: {module: ipo}\n")
    with pytest.raises(ConfigError, match=r"study\.yaml: line 5: key 'dpo' given twice in one mapping \(first on line 3\)"):
        load_config_file(path)
    assert load_config_file(ROOT / "config" / "config.yaml") == DEFAULT


def test_duplicate_yaml_key_stops_snakemake_before_any_job(tmp_path):
    """Bug guarded: Snakemake loads the YAML itself (last key wins); the workflow must re-read it strictly."""
    text = (ROOT / "config" / "smoke.yaml").read_text()
    path = tmp_path / "dup.yaml"
    path.write_text(text + "\nseed: 3\n")
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "--configfile", str(path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert "dup.yaml: line" in proc.stdout + proc.stderr and "key 'seed' given twice" in proc.stdout + proc.stderr


def test_empty_api_key_variable_is_refused():
    """Bug guarded: OPENAI_API_KEY set but empty passed the start-up check and failed at the first judge call."""
    from pipeline.config import check_api_keys

    config = copy.deepcopy(DEFAULT)
    config["judges"]["gpt4"] = {"kind": "http", "model": "gpt-4", "base_url": "https://api.openai.com/v1"}
    with pytest.raises(ConfigError, match=r"environment variable OPENAI_API_KEY \(judges' api_key_env\) is empty"):
        check_api_keys(config, {"OPENAI_API_KEY": "  "})
    check_api_keys(config, {"OPENAI_API_KEY": "sk-x"})


def test_key_is_never_sent_in_clear_text_or_to_another_host():
    """Bug guarded: a custom base_url without api_key_env got the OpenAI key, even over plain http."""
    def judge(**block):
        return lambda c: c["judges"].update(other={"kind": "http", "model": "m", **block})

    refused(judge(base_url="http://judge.example.org/v1", api_key_env="JUDGE_KEY"),
            r"key judges\.other\.base_url: 'http://judge\.example\.org/v1' is plain http and not loopback", plugin=False)
    refused(judge(base_url="https://judge.example.org/v1"),
            r"key judges\.other\.api_key_env: required for 'https://judge\.example\.org/v1'", plugin=False)
    for ok in ({"base_url": "http://127.0.0.1:8000/v1"}, {"base_url": "https://api.openai.com/v1"},
               {"base_url": "https://judge.example.org/v1", "api_key_env": "JUDGE_KEY"}):
        config = copy.deepcopy(DEFAULT)
        judge(**ok)(config)
        check_config(config)


def test_length_penalty_list_is_one_model_per_value():
    """The λ sweep: `length_penalty: [0.0, 0.01, 0.03]` on an iterative block is three models, each with its own
    scalar λ (so each trains, is judged and gets its Table 6 row); guards against a list reaching a trainer or a
    sweep that silently replaces another method of the same name."""
    config = copy.deepcopy(DEFAULT)
    config["methods"]["iterative_dpo_concise"]["length_penalty"] = [0.0, 0.01, 0.03]
    check_config(config, plugin_checks=[check_method_blocks])
    swept = ["iterative_dpo_concise_l0", "iterative_dpo_concise_l0.01", "iterative_dpo_concise_l0.03"]
    assert [m for m in variants(config) if m.startswith("iterative_dpo_concise")] == swept
    blocks = expand_sweeps(config["methods"])
    assert [blocks[m]["length_penalty"] for m in swept] == [0.0, 0.01, 0.03]
    assert blocks["iterative_dpo_concise_l0.01"]["trainer"] == config["methods"]["iterative_dpo_concise"]["trainer"]
    assert expand_sweeps(blocks) == blocks and "iterative_dpo" in blocks
    refused(lambda c: c["methods"]["iterative_dpo_concise"].update(length_penalty=[0.01, -0.1]),
            r"key methods\.iterative_dpo_concise\.length_penalty: .*not valid under any of the given schemas|"
            r"-0\.1 is less than the minimum of 0")
    refused(lambda c: c["methods"].update(iterative_dpo_concise_l0=c["methods"]["iterative_dpo"]) or
            c["methods"]["iterative_dpo_concise"].update(length_penalty=[0.0, 0.03]),
            r"methods\.iterative_dpo_concise\.length_penalty: model name 'iterative_dpo_concise_l0' is already taken")


def test_seeded_names_round_trip_and_models_cover_every_seed():
    """The one place model names are made and parsed (contracts: sft, then <variant>-s<seed>). Guards against a
    name that parses back to another variant or seed (a swept λ such as 1e-05 has a dash of its own), and against
    a variant missing one of its seeds."""
    for variant, seed in (("dpo", 0), ("iterative_dpo_concise_l0.03", 12), ("iterative_dpo_concise_l1e-05", 2)):
        assert split_seeded(seeded_name(variant, seed)) == (variant, seed)
    assert seeded_name("best_of_n_4", 2) == "best_of_n_4-s2" and split_seeded("sft") == ("sft", None)
    with pytest.raises(InputError, match=r"model name 'dpo': expected 'sft' or <variant>-s<seed>"):
        split_seeded("dpo")
    config = copy.deepcopy(DEFAULT)
    config["seeds"] = [3, 1]
    names = models(config)
    assert names[0] == "sft" and len(names) == 1 + 2 * len(variants(config))
    assert names[1:3] == [seeded_name(variants(config)[0], 3), seeded_name(variants(config)[0], 1)]


def test_bad_seeds_are_refused_naming_the_key():
    """`seeds:` must be a non-empty list of unique non-negative integers: a seed given twice would be one model
    name for two runs (they would overwrite each other's checkpoint)."""
    refused(lambda c: c.update(seeds=[0, 0]), r"key seeds: \[0, 0\] has non-unique elements", plugin=False)
    refused(lambda c: c.update(seeds=[]), r"key seeds: \[\] should be non-empty", plugin=False)
    refused(lambda c: c.update(seeds=[-1]), r"key seeds\.0: -1 is less than the minimum of 0", plugin=False)
    refused(lambda c: c.pop("seeds"), r"key \(top level\): 'seeds' is a required property", plugin=False)
    config = copy.deepcopy(DEFAULT)
    config["seeds"] = [1, 1]                              # models() alone (no schema) refuses it too
    with pytest.raises(ConfigError, match=r"config key seeds: \[1, 1\]; expected a list of at least one unique"):
        models(config)
    command_line = {"seeds": ["0", "2"]}                  # Snakemake's --config seeds=[0,2]: strings
    seeds_from_command_line(command_line)
    assert command_line["seeds"] == [0, 2]
