"""Malformed data files stop with one line naming the file, the row or field, and what was expected (pipeline/io.py,
pipeline/config.py). Each test names the bug it guards against."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config_file
from pipeline.io import InputError, read_json, read_jsonl, validate, write_json, write_jsonl, write_text

ROOT = Path(__file__).resolve().parents[2]
PAIR = {"prompt": [{"role": "user", "content": "Add 2 and 3."}],
        "chosen": [{"role": "assistant", "content": "5"}], "rejected": [{"role": "assistant", "content": "6"}]}


def jsonl(path: Path, *lines: str | bytes) -> Path:
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


def test_non_utf8_row_is_named_not_a_decode_traceback(tmp_path):
    """Bug guarded: Latin-1 bytes gave a UnicodeDecodeError traceback that named no file."""
    path = jsonl(tmp_path / "prefs.jsonl", json.dumps(PAIR), b'{"prompt": "caf\xe9"}')
    with pytest.raises(InputError, match=r"prefs\.jsonl, row 2: not UTF-8 \(byte 0xe9 at offset 15\); expected UTF-8"):
        read_jsonl(path, schema="preference_row")


def test_non_utf8_json_file_is_named(tmp_path):
    """Bug guarded: the same for a whole-file JSON (AlpacaEval outputs)."""
    path = tmp_path / "baseline.json"
    path.write_bytes(b'[{"instruction": "\xff"}]')
    with pytest.raises(InputError, match=r"baseline\.json: not UTF-8 \(byte 0xff"):
        read_json(path)


def test_non_utf8_config_file_is_named(tmp_path):
    """Bug guarded: a config saved in Latin-1 failing deep in PyYAML."""
    path = tmp_path / "study.yaml"
    path.write_bytes(b"study: caf\xe9\n")
    with pytest.raises(InputError, match=r"study\.yaml: not UTF-8"):
        load_config_file(path)


def test_invalid_yaml_config_is_named(tmp_path):
    """Bug guarded: a YAML syntax error surfacing as a multi-line PyYAML traceback."""
    path = tmp_path / "study.yaml"
    path.write_text("study: [unclosed\n")
    with pytest.raises(ConfigError, match=r"study\.yaml: not valid YAML"):
        load_config_file(path)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_not_json(tmp_path, literal):
    """Bug guarded: Python's json accepts NaN/Infinity, so a score or reward of NaN flowed into the tables."""
    path = jsonl(tmp_path / "samples.jsonl", f'{{"reward": {literal}}}')
    with pytest.raises(InputError, match=rf"samples\.jsonl, row 1: {literal} is not valid JSON"):
        read_jsonl(path)


def test_schemas_reject_nan_numbers():
    """Bug guarded: `type: number` in the JSON schemas let float('nan') through (it is a Python float)."""
    score = {"suite": "mt_bench", "model": "m", "n": 1, "metrics": {"overall": {"value": float("nan"), "stderr": None,
                                                                               "n": 1}}}
    with pytest.raises(InputError, match=r"scores\.json: field 'metrics/overall/value': nan is not of type"):
        validate(score, "score", "scores.json")


def test_nan_is_never_written_as_json(tmp_path):
    """Bug guarded: bare `NaN` written into a .json file (invalid JSON for every other reader)."""
    with pytest.raises(InputError, match=r"out\.json: field 'metrics/lc/value': NaN or Infinity cannot be written"):
        write_json(tmp_path / "out.json", {"metrics": {"lc": {"value": float("nan")}}})
    with pytest.raises(InputError, match=r"out\.jsonl, row 2: field 'rewards/1': NaN or Infinity"):
        write_jsonl(tmp_path / "out.jsonl", [{"rewards": [1.0]}, {"rewards": [1.0, float("inf")]}])
    assert list(tmp_path.iterdir()) == []


def test_pair_with_identical_answers_is_refused(tmp_path):
    """Bug guarded: chosen == rejected accepted; DPO gets a zero-signal pair, the reward model a contradiction."""
    path = jsonl(tmp_path / "prefs.jsonl", json.dumps(PAIR), json.dumps({**PAIR, "rejected": PAIR["chosen"]}))
    with pytest.raises(InputError, match=r"prefs\.jsonl, row 2: field 'rejected': equal to 'chosen'; expected two "
                                         r"different answers"):
        read_jsonl(path, schema="preference_row")


@pytest.mark.parametrize("field", ["prompt", "chosen"])
def test_pair_with_empty_prompt_or_chosen_answer_is_refused(tmp_path, field):
    """Bug guarded: empty content accepted as a prompt or a preferred answer (a blank column mapping)."""
    row = {**PAIR, field: [{"role": PAIR[field][0]["role"], "content": "  "}]}
    path = jsonl(tmp_path / "prefs.jsonl", json.dumps(row))
    with pytest.raises(InputError, match=rf"prefs\.jsonl, row 1: field '{field}/0/content': empty; expected text"):
        read_jsonl(path, schema="preference_row")


def test_empty_rejected_answer_is_a_legitimate_bad_answer(tmp_path):
    """Bug guarded: over-eager checks refusing an iterative pair whose worst sample is an empty answer."""
    path = jsonl(tmp_path / "pairs.jsonl", json.dumps({**PAIR, "rejected": [{"role": "assistant", "content": ""}]}))
    assert len(read_jsonl(path, schema="preference_row")) == 1


def test_duplicate_baseline_instruction_is_refused(tmp_path):
    """Bug guarded: two baseline outputs for one instruction, the last silently winning where they are matched."""
    rows = [{"instruction": f"q{i % 2}", "output": "a", "generator": "base"} for i in range(3)]
    write_text(tmp_path / "baseline.json", json.dumps(rows))
    with pytest.raises(InputError, match=r"baseline\.json: field '2/instruction': 'q0' repeats item 0; expected each "
                                         r"instruction once"):
        read_json(tmp_path / "baseline.json", schema="alpaca_eval_outputs")


def test_row_that_is_not_an_object_is_named(tmp_path):
    """Bug guarded: a JSONL line holding a list crashing later with a TypeError on row['prompt']."""
    path = jsonl(tmp_path / "prefs.jsonl", "[1, 2]")
    with pytest.raises(InputError, match=r"prefs\.jsonl, row 1: field '\(top level\)': \[1, 2\] is not of type 'object'"):
        read_jsonl(path, schema="preference_row")


def test_truncated_json_file_is_named(tmp_path):
    """Bug guarded: a JSON file cut short by a full disk giving json's message without the file."""
    (tmp_path / "stats.json").write_text('{"pairs": 3, ')
    with pytest.raises(InputError, match=r"stats\.json: not valid JSON \(Expecting property name"):
        read_json(tmp_path / "stats.json")


# ------------------------------------------------------------------------------------------ files on disk
def test_files_honour_the_umask(tmp_path):
    """Bug guarded: atomic writes went through mkstemp, so every output was 0600 whatever the umask: group members on a
    shared cluster could not read the results."""
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "x")
        os.umask(0o002)
        write_json(tmp_path / "b.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o664


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    """Bug guarded: a write that dies half way (here: a character UTF-8 cannot encode, raised inside the file
    write, after the temporary file exists) truncating the previous version or leaving `.tmp` litter. Unlike the old
    test, the failure happens after the temporary file was opened, so a non-atomic write_text fails this test."""
    path = tmp_path / "out.jsonl"
    write_text(path, "old\n")
    with pytest.raises(UnicodeEncodeError):
        write_text(path, "new\n" * 1000 + "\udc80")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_killed_writer_leaves_only_the_old_file_and_a_hidden_temporary(tmp_path):
    """Bug guarded: a writer killed mid-write (SIGKILL: no cleanup runs) leaving a half-written file under the real
    name. Only the hidden temporary may remain, which checkpoint hashes ignore and write_provenance removes."""
    path = tmp_path / "big.json"
    write_text(path, "old\n")
    code = ("import os, pipeline.io as io\n"
            "real = os.replace\n"
            "os.replace = lambda *a: os.kill(os.getpid(), 9)\n"
            f"io.write_text(__import__('pathlib').Path({str(path)!r}), 'new' * 100000)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True)
    assert proc.returncode == -9
    assert path.read_text() == "old\n"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "big.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".big.json.") and leftovers[0].endswith(".tmp")
