"""The generation entry point with a real (tiny, random) checkpoint: one process, one model load, every suite's file
written in its upstream format, and lm-eval run on the model already in memory."""

from __future__ import annotations

import json

import pytest

from evals.registry import get_suite
from pipeline.io import read_json, read_jsonl

SUITES = ("alpaca_eval", "mt_bench", "arena_hard", "academic")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.evals.test_academic import make_tokenizer

    tok = make_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    folder = tmp_path_factory.mktemp("model")
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    from pipeline.provenance import write_provenance

    write_provenance(folder, stage="base", config_block={}, parents={}, seed=0, wall_time_s=0.0, tokens_seen=0,
                     compute={"device": "cpu", "world_size": 1, "effective_batch_size": 1,
                              "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1, "device_hours": 0.0})
    return folder


def test_one_process_answers_every_suite_and_runs_lm_eval(tiny_model, eval_data, config, tmp_path, monkeypatch):
    from evals import generate
    from evals.protocols import academic_protocol as academic

    loads = []
    original = academic.run_academic_with_model

    def spy(model, tokenizer, *args, **kwargs):
        loads.append(model)
        return original(model, tokenizer, *args, **kwargs)

    monkeypatch.setattr(academic, "run_academic_with_model", spy)
    evals = json.loads(json.dumps(config["evals"]))
    evals["academic"]["limit"] = 3
    kinds = {k for s in SUITES for k in get_suite(s).generation_inputs(evals[s])}
    out = tmp_path / "generations"
    generate.main(["--model-dir", str(tiny_model), "--model", "tiny", "--suites", *SUITES,
                   "--data", *[f"{k}={eval_data[k]}" for k in sorted(kinds)],
                   "--generation-json", json.dumps({**config["generation"], "max_new_tokens": 4}),
                   "--evals-json", json.dumps(evals), "--out-dir", str(out)])
    assert len(read_json(out / "alpaca_eval.json", schema="alpaca_eval_outputs")) == len(read_json(
        eval_data["alpaca_eval_baseline"]))
    assert all(len(a["choices"][0]["turns"]) == 2 for a in read_jsonl(out / "mt_bench.jsonl", schema="mt_bench_answer"))
    assert {a["model"] for a in read_jsonl(out / "arena_hard.jsonl", schema="arena_hard_answer")} == {"tiny"}
    summary = read_json(out / "academic" / "academic.json", schema="academic_results")
    assert set(summary["tasks"]) == {t["name"] for t in evals["academic"]["tasks"]}
    assert all(t["n"] == 3 for t in summary["tasks"].values())
    assert (out / "academic" / "lm_eval_results.json").is_file()
    assert len(loads) == 1  # lm-eval got the model the generation backend had loaded


def test_corrupt_checkpoint_is_not_evaluated(tiny_model, eval_data, config, tmp_path):
    """Bug guarded: a model.safetensors changed after training evaluated anyway, so the tables named a checkpoint hash
    that no longer matched the weights that produced their numbers."""
    import shutil

    from evals import generate
    from pipeline.io import InputError

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF  # one flipped byte, same size
    (folder / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(InputError, match=r"model: checkpoint files hash to \w+, but provenance\.json records"):
        generate.main(["--model-dir", str(folder), "--model", "tiny", "--suites", "mt_bench",
                       "--data", f"mt_bench_questions={eval_data['mt_bench_questions']}",
                       "--generation-json", json.dumps(config["generation"]),
                       "--evals-json", json.dumps(config["evals"]), "--out-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
