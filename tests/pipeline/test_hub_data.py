"""The hub data stage (pipeline/hub_data.py) on config/rlhf_workflow.yaml's own `data:` block, with only the network
faked: a tiny local "hub" laid out as the real datasets' repositories (their files, formats and column names), read
through the local-mirror option real users have for offline clusters, by the real entry point and datasets library."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.hub_data import MIRROR_ENV, OUTPUTS, main, outputs
from pipeline.io import InputError, read_json, read_jsonl
from world.data import OUTPUTS as WORLD_OUTPUTS
from world.rehearsal_mirror import conversation, write_lines, write_parquet

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "config" / "rlhf_workflow.yaml").read_text())
SCHEMAS = {"sft": "sft_row", "prefs": "preference_row", "kto": "kto_row", "rm_prefs": "preference_row",
           "online_prompts": "prompt_row", "mt_bench_questions": "mt_bench_question",
           "mt_bench_reference": "mt_bench_answer", "online_prompts_iter1": "prompt_row",
           "online_prompts_iter2": "prompt_row", "online_prompts_iter3": "prompt_row",
           "arena_hard_questions": "arena_hard_question", "arena_hard_baseline": "arena_hard_answer"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Each dataset the config names, as its repository's files with its real columns (a handful of rows)."""
    root = tmp_path_factory.mktemp("hub")
    write_parquet(root / "RLHFlow/RLHFlow-SFT-Dataset-ver2/data/train-00000-of-00001.parquet",
                  [{"messages": conversation(f"Question {i}?", f"Answer {i}."), "conversation_id": i} for i in range(6)])
    write_parquet(root / "berkeley-nest/Nectar/data/rlaif.parquet", [
        {"prompt": f"\n\nHuman: Tell me about topic {i}.\n\nAssistant:",
         "answers": [{"answer": f"Good answer {i}", "model": "gpt-4", "rank": 1.0},
                     {"answer": f"Middling answer {i}", "model": "llama", "rank": 2.0},
                     {"answer": f"Bad answer {i}", "model": "alpaca", "rank": 3.0}],
         "turns": 1, "num_responses": 3, "source": ["sharegpt"], "good_natured": True} for i in range(5)])
    write_parquet(root / "hendrydong/preference_700K/data/train-00000-of-00001.parquet", [
        {"chosen": conversation(f"Prompt {i}", f"Helpful {i}"), "rejected": conversation(f"Prompt {i}", f"Unhelpful {i}"),
         "chosen_score": 5.0, "rejected_score": 1.0} for i in range(4)])
    write_parquet(root / "RLHFlow/prompt-collection-v0.1/data/train-00000-of-00001.parquet", [
        {"dataset": "ultrafeedback", "context": f"Prompt {i}", "context_messages": [{"role": "user", "content": f"Prompt {i}"}],
         "id": f"uf-{i}"} for i in range(8)])
    for t in (1, 2, 3):
        write_parquet(root / f"RLHFlow/iterative-prompt-v1-iter{t}-20K/data/train-00000-of-00001.parquet", [
            {"context_messages": [{"role": "user", "content": f"Iteration {t} prompt {i}"}]} for i in range(3)])
    baseline = [{"dataset": "helpful_base", "instruction": f"Instruction {i}", "output": f"Baseline output {i}",
                 "generator": "gpt4_1106_preview"} for i in range(5)]
    (root / "tatsu-lab/alpaca_eval").mkdir(parents=True)
    (root / "tatsu-lab/alpaca_eval/alpaca_eval_gpt4_baseline.json").write_text(json.dumps(baseline))
    (root / "tatsu-lab/alpaca_eval/alpaca_eval.json").write_text(json.dumps(baseline))  # other files sit beside it
    (root / "tatsu-lab/alpaca_eval/df_gamed.csv").write_text(
        "index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline,model\n"
        "0,0.3,-0.5,0.25,False,gamed_verbose\n1,0.6,0.2,-0.75,False,gamed_verbose\n")
    write_lines(root / "HuggingFaceH4/mt_bench_prompts/raw/question.jsonl", [
        {"question_id": 81, "category": "writing", "prompt": ["Write a post.", "Rewrite it."], "reference": []},
        {"question_id": 111, "category": "math", "prompt": ["Area of the triangle?", "And the circle?"],
         "reference": ["Area is 3", "5pi"]}])
    # FastChat's reference_answer/gpt-4.jsonl (in the lmsys/mt-bench space): math, reasoning and coding only.
    write_lines(root / "lmsys/mt-bench/data/mt_bench/reference_answer/gpt-4.jsonl", [
        {"question_id": 111, "answer_id": "r111", "model_id": "gpt-4",
         "choices": [{"index": 0, "turns": ["The area is 3.", "The circle's area is 5pi."]}], "tstamp": 1.0}])
    write_parquet(root / "lmarena-ai/arena-hard-auto-v0.1/data/train-00000-of-00001.parquet", [
        {"question_id": f"q{i}", "category": "arena-hard-v0.1", "cluster": "c", "turns": [{"content": f"Hard {i}"}]}
        for i in range(3)])
    # the hub's v0.1 baseline answers are in arena-hard-auto's v2 answer format (uid, messages)
    write_lines(root / "lmarena-ai/arena-hard-auto/data/arena-hard-v0.1/model_answer/gpt-4-0314.jsonl", [
        {"uid": f"q{i}", "ans_id": f"a{i}", "model": "gpt-4-0314",
         "messages": [{"role": "user", "content": f"Hard {i}"},
                      {"role": "assistant", "content": {"answer": f"## Baseline answer {i}\n- point"}}],
         "tstamp": 0.0, "metadata": {"token_len": 6}} for i in range(3)])
    return root


def small_data_block():
    data = copy.deepcopy(CONFIG["data"])
    data["online_prompts"]["rows"] = 5  # the study takes 60K
    return data


@pytest.fixture
def offline_env(hub, tmp_path, monkeypatch):
    env = {MIRROR_ENV: str(hub), "HF_HOME": str(tmp_path / "hf_home"), "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_outputs_are_the_world_stage_files_real_data_can_have():
    assert {k: WORLD_OUTPUTS[k] for k in OUTPUTS} == OUTPUTS
    assert set(WORLD_OUTPUTS) - set(OUTPUTS) == {"pretrain", "eval_items", "academic_gen", "academic_mc"}


def test_entry_point_writes_every_file_in_its_schema(offline_env, tmp_path):
    out = tmp_path / "data"
    proc = subprocess.run([sys.executable, "-m", "pipeline.hub_data", "--config-json", json.dumps(small_data_block()),
                           "--seed", "0", "--out-dir", str(out)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **offline_env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = outputs(small_data_block())
    assert sorted(p.name for p in out.iterdir()) == sorted(files.values())
    assert set(files) - set(OUTPUTS) == {"alpaca_eval_gamed", "online_prompts_iter1", "online_prompts_iter2",
                                         "online_prompts_iter3"}
    rows = {kind: read_jsonl(out / name, schema=SCHEMAS[kind]) for kind, name in files.items() if kind in SCHEMAS}
    baseline = read_json(out / OUTPUTS["alpaca_eval_baseline"], schema="alpaca_eval_outputs")

    assert rows["sft"][0]["messages"] == conversation("Question 0?", "Answer 0.")
    # Nectar: the HH-style prompt as a user turn, best-ranked vs worst-ranked answer.
    assert rows["prefs"][0] == {"prompt": [{"role": "user", "content": "Tell me about topic 0."}],
                                "chosen": [{"role": "assistant", "content": "Good answer 0"}],
                                "rejected": [{"role": "assistant", "content": "Bad answer 0"}]}
    assert len(rows["kto"]) == 2 * len(rows["prefs"]) == 10
    assert rows["rm_prefs"][1] == {"prompt": [{"role": "user", "content": "Prompt 1"}],
                                   "chosen": [{"role": "assistant", "content": "Helpful 1"}],
                                   "rejected": [{"role": "assistant", "content": "Unhelpful 1"}]}
    assert len(rows["online_prompts"]) == 5 and all(len(r["prompt"]) == 1 for r in rows["online_prompts"])
    assert baseline[0] == {"instruction": "Instruction 0", "output": "Baseline output 0",
                           "generator": "gpt4_1106_preview", "dataset": "helpful_base"}
    questions = {q["question_id"]: q for q in rows["mt_bench_questions"]}
    assert all("reference" not in q for q in questions.values())   # FastChat reads gpt-4.jsonl, not this field
    assert rows["mt_bench_reference"] == [{"question_id": 111, "answer_id": "r111", "model_id": "gpt-4",
                                           "choices": [{"index": 0, "turns": ["The area is 3.",
                                                                              "The circle's area is 5pi."]}],
                                           "tstamp": 1.0}]
    assert [r["prompt"][0]["content"] for r in rows["online_prompts_iter2"]] == [f"Iteration 2 prompt {i}"
                                                                                  for i in range(3)]
    assert (out / files["alpaca_eval_gamed"]).read_text().startswith("index,preference,std_delta_len")
    assert questions[81]["turns"] == ["Write a post.", "Rewrite it."]
    assert rows["arena_hard_questions"][2] == {"uid": "q2", "category": "hard_prompt", "prompt": "Hard 2"}
    answer = rows["arena_hard_baseline"][0]
    assert answer["uid"] == "q0" and answer["model"] == "gpt-4-0314"
    assert answer["messages"][1]["content"]["answer"] == "## Baseline answer 0\n- point"
    from evals.protocols.arena_hard_protocol import answer_style_metadata

    assert "metadata" not in answer  # computed by the Arena-Hard suite, as upstream's show_result reads it
    assert answer_style_metadata(answer)["header_count"]["h2"] == 1


def test_wrong_column_mapping_names_the_key_and_the_dataset(offline_env, tmp_path):
    data = small_data_block()
    data["sft"]["columns"] = {"messages": "conversations"}
    with pytest.raises(InputError) as err:
        main(["--config-json", json.dumps(data), "--out-dir", str(tmp_path / "data")])
    message = str(err.value)
    assert "config key data.sft.columns.messages" in message and "'RLHFlow/RLHFlow-SFT-Dataset-ver2'" in message
    assert "conversation_id" in message  # the dataset's real columns are listed


def test_wrong_nested_path_names_the_key(offline_env, tmp_path):
    data = small_data_block()
    data["arena_hard_questions"]["columns"]["prompt"] = "turns.0.text"
    with pytest.raises(InputError, match=r"data\.arena_hard_questions\.columns\.prompt.*lmarena-ai/arena-hard-auto-v0\.1"):
        main(["--config-json", json.dumps(data), "--out-dir", str(tmp_path / "data")])


def test_dataset_missing_from_the_mirror_is_named(offline_env, tmp_path, monkeypatch):
    data = small_data_block()
    data["rm_prefs"]["dataset"] = "nobody/absent"
    with pytest.raises(InputError, match=r"data\.mirror.*nobody/absent"):
        main(["--config-json", json.dumps(data), "--out-dir", str(tmp_path / "data")])


def test_config_level_checks_for_real_studies():
    from methods.registry import check_method_blocks
    from pipeline.config import ConfigError, check_config

    config = copy.deepcopy(CONFIG)
    config["judges"]["oracle"] = {"kind": "oracle", "temperature": 0.2, "verbosity_bias": 1.0, "length_scale": 50,
                                  "seed": 0}
    with pytest.raises(ConfigError, match="judges.oracle: the oracle judge needs the micro world"):
        check_config(config, plugin_checks=[check_method_blocks])
    config = copy.deepcopy(CONFIG)
    config["evals"]["academic"]["tasks"].append({"name": "micro_arith_gen", "data": "academic_gen"})
    with pytest.raises(ConfigError, match=r"evals\.academic\.tasks\.6\.data"):
        check_config(config, plugin_checks=[check_method_blocks])
    config = copy.deepcopy(CONFIG)
    config["data"]["sft"]["columnz"] = {}
    with pytest.raises(ConfigError, match=r"key data\.sft"):
        check_config(config, plugin_checks=[check_method_blocks])



def test_hub_file_missing_from_the_mirror_is_named(offline_env, tmp_path):
    """A hub file source (FastChat's reference answers) absent from the mirror stops the stage naming the key."""
    data = small_data_block()
    data["mt_bench_reference"]["file"] = "data/mt_bench/reference_answer/gpt-5.jsonl"
    with pytest.raises(InputError, match=r"config key data\.mt_bench_reference: no .*gpt-5\.jsonl in the mirror"):
        main(["--config-json", json.dumps(data), "--out-dir", str(tmp_path / "data")])
