"""Online methods sample on the job's device: iterative DPO's sampling through the transformers backend (the policy
moved to the rank's device, the prompts split over the ranks) or the vllm backend (pipeline/vllm_server.py, here
with tests/pipeline/vllm_standin: the real subprocess and HTTP path, a stand-in answering for vLLM)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from methods.common import load_policy
from methods.sampling import sample
from pipeline.io import read_json, read_jsonl
from pipeline.provenance import read_provenance
from tiny_setup import block

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests/pipeline/vllm_standin"


def test_load_policy_moves_the_model_to_the_given_device(sft):
    """Guards against sampling on CPU on a GPU node: load_policy used to ignore the device (the meta device stands
    in for a GPU here: a move that is not made leaves the parameters on cpu)."""
    model, _ = load_policy(sft, device="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_vllm_backend_samples_n_chat_templated_completions_per_prompt(sft, monkeypatch):
    """sampling.backend vllm: prompts rendered with the policy's chat template, n samples each in prompt order, the
    sampling settings and seed sent to the server, and the server stopped afterwards."""
    monkeypatch.setenv("PYTHONPATH", str(STANDIN))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    _, tokenizer = load_policy(sft)
    conversations = [[{"role": "user", "content": f"add {i} and 2"}] for i in range(3)]
    completions, finished, generated = sample(
        sft, conversations, 2, backend="vllm", max_new_tokens=4000, temperature=0.9, top_p=0.8, batch_size=4,
        seed=11, device="cpu", vllm={"python": sys.executable, "startup_timeout_s": 60})
    asked = [[json.loads(c) for c in cs] for cs in completions]
    expected = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    assert [[a["prompt"] for a in cs] for cs in asked] == [[p, p] for p in expected]
    assert {(a["n"], a["temperature"], a["top_p"], a["max_tokens"]) for cs in asked for a in cs} == \
        {(2, 0.9, 0.8, 4000)}
    assert [cs[0]["seed"] for cs in asked] == [11, 11, 12]          # 2 prompts per request (batch 4 / n 2)
    assert all(all(fs) for fs in finished) and generated > 0


def test_iterative_dpo_iteration_in_two_processes(world, sft, reward_model, tmp_path):
    """One iterative-DPO iteration launched in 2 CPU processes: each rank samples and scores half of the prompts,
    rank 0 merges them (every prompt once, in order) and writes the files once, and DPO trains on the pairs with
    the effective batch of the block."""
    config = block({"learning_rate": 5e-3, "beta": 0.1, "max_steps": 2}, batch=8, module="iterative_dpo",
                   iterations=1, samples_per_prompt=4, sampling={"temperature": 1.0, "max_new_tokens": 16})
    samples_dir, out_dir = tmp_path / "iterative/iter1", tmp_path / "models/iter1"
    args = [sys.executable, "-m", "methods.launch", "--cpu-processes", "2", "--", "methods.iterative_dpo",
            "iteration", "--method", "iterative_dpo", "--block-json", json.dumps(config), "--seed", "0",
            "--iteration", "1", "--policy", str(sft), "--reference", str(sft), "--reward-model", str(reward_model),
            "--prompts", str(world["online_prompts"]), "--samples-dir", str(samples_dir), "--out-dir", str(out_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    prompts = read_jsonl(world["online_prompts"])
    samples = read_jsonl(samples_dir / "samples.jsonl")
    assert [s["item_id"] for s in samples] == [p["item_id"] for p in prompts]
    assert all(len(s["completions"]) == len(s["rewards"]) == 4 for s in samples)
    stats = read_json(samples_dir / "stats.json")
    assert stats["processes"] == 2 and stats["prompts"] == len(prompts)
    record = read_provenance(out_dir)
    assert record["compute"]["world_size"] == 2 and record["compute"]["gradient_accumulation_steps"] == 1
    assert record["compute"]["per_device_train_batch_size"] == 4          # 8 pairs per step over 2 ranks
    leftovers = [p.name for p in (out_dir / "trainer_state").iterdir()]
    assert "sampling" not in leftovers and not [n for n in leftovers if n.startswith("checkpoint-")]
