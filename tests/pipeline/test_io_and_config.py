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
from pipeline.config import ConfigError, check_config
from pipeline.io import InputError, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
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
    missing = tmp_path / "judgments.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "evals.score", "--suite", "alpaca_eval", "--model", "sft", "--judgments", str(missing),
         "--generations", str(tmp_path / "g.json"), "--items", str(tmp_path / "i.jsonl"), "--out", str(tmp_path / "s.json")],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {missing}: file not found"


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"a": 1}])
    with pytest.raises(TypeError):
        write_jsonl(path, [{"a": object()}])
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_wrong_loss_type_fails_at_config_time():
    config = copy.deepcopy(DEFAULT)
    config["methods"]["ipo"]["trainer"]["loss_type"] = "ipp"
    with pytest.raises(ConfigError, match=r"methods\.ipo\.trainer\.loss_type.*'ipp'"):
        check_config(config, plugin_checks=[check_method_blocks])
