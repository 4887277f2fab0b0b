"""Multi-process launch (methods/launch.py): one process per device, the effective batch size invariant, rank 0
alone saving. The 2-process runs are real: torchrun starts two CPU processes (DDP over gloo) of the real entry
point, as a training rule does when the job has no GPU and `launch.cpu_processes: 2`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from methods.launch import command
from methods.train import run
from pipeline.provenance import read_provenance
from tiny_setup import block

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------ unit: no process
def test_one_process_is_plain_python_and_several_cpu_processes_use_torchrun(tmp_path):
    """Guards against a launcher wrapped around single-process jobs, and against FSDP configs used on CPU (FSDP
    needs GPUs: a CPU job with the real study's accelerate config must still start, as DDP over gloo)."""
    fsdp = ROOT / "config/accelerate/fsdp.yaml"
    assert command("methods.train", ["--x"], processes=1, gpus=0, accelerate_config=fsdp) == \
        [sys.executable, "-m", "methods.train", "--x"]
    cpu = command("methods.train", ["--x"], processes=2, gpus=0, accelerate_config=fsdp)
    assert cpu[1:3] == ["-m", "torch.distributed.run"] and cpu[cpu.index("--nproc_per_node") + 1] == "2"
    assert cpu[-3:] == ["-m", "methods.train", "--x"] and "--standalone" in cpu   # free rendezvous port per job
    gpu = command("methods.train", ["--x"], processes=8, gpus=8, accelerate_config=fsdp)
    assert gpu[1:3] == ["-m", "accelerate.commands.launch"]
    assert gpu[gpu.index("--config_file") + 1] == str(fsdp) and gpu[gpu.index("--num_processes") + 1] == "8"
    assert gpu[gpu.index("--main_process_port") + 1] == "0"                      # a free port: jobs share nodes


@pytest.mark.parametrize("world_size", [1, 2, 4, 8])
def test_effective_batch_is_invariant_under_the_world_size(world_size, monkeypatch):
    """Guards against gradient accumulation computed for one device (the effective batch growing with GPUs)."""
    from methods.common import device_plan

    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    plan = device_plan({"effective_batch_size": 32, "per_device_train_batch_size": 8, "trainer": {}}, "methods.x")
    assert plan["world_size"] == world_size
    assert plan["per_device_train_batch_size"] * plan["gradient_accumulation_steps"] * world_size == 32
    assert plan["per_device_train_batch_size"] == min(8, 32 // world_size)


def test_a_batch_that_cannot_be_split_names_the_key(monkeypatch):
    from methods.common import device_plan
    from pipeline.io import InputError

    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(InputError, match=r"methods\.dpo\.effective_batch_size: 32 cannot be split evenly over 3"):
        device_plan({"effective_batch_size": 32, "per_device_train_batch_size": 8}, "methods.dpo")


def test_shipped_fsdp_config_shards_fully_in_bf16_compute():
    """The real study's launch config: full shard, bf16 mixed precision (fp32 sharded master weights), no
    parameter offload, as README's memory arithmetic assumes (parsed by accelerate's own launcher)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(ROOT / "config/accelerate/fsdp.yaml"),
                                               "--num_processes", "8", "-m", "methods.train"])
    env = prepare_multi_gpu_env(_validate_launch_command(args)[0])
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_RESHARD_AFTER_FORWARD"] == "full_shard"
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16" and env["FSDP_OFFLOAD_PARAMS"] == "false"


# ------------------------------------------------------------------------------------------- 2 CPU processes, real
def launched(method: str, config: dict, out_dir: Path, *, processes: int, data: dict, reward_model=None, sft=None):
    """Run the real entry point through methods.launch with `processes` CPU processes; return its provenance."""
    args = [sys.executable, "-m", "methods.launch", "--cpu-processes", str(processes), "--",
            "methods.train", "--method", method, "--block-json", json.dumps(config), "--seed", "0",
            "--policy", str(sft), "--reference", str(sft), "--out-dir", str(out_dir),
            "--data", *[f"{k}={v}" for k, v in data.items()]]
    if reward_model is not None:
        args += ["--reward-model", str(reward_model)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return read_provenance(out_dir), proc.stderr


def losses(record: dict, key: str = "loss") -> list[float]:
    return [row[key] for row in record["metrics"]["train_log"] if key in row]


def compare(method, config, tmp_path, data, *, sft, reward_model=None):
    one = run(method, config, seed=0, policy=sft, reference=sft, data=data, reward_model=reward_model,
              out_dir=tmp_path / "one")
    two, stderr = launched(method, config, tmp_path / "two", processes=2, data=data, reward_model=reward_model,
                           sft=sft)
    assert two["compute"]["world_size"] == 2 and one["compute"]["world_size"] == 1
    assert two["compute"]["distributed"] == "ddp"
    for record in (one, two):      # the same examples per optimizer step, however they are spread
        c = record["compute"]
        assert c["per_device_train_batch_size"] * c["gradient_accumulation_steps"] * c["world_size"] == \
            config["effective_batch_size"]
    # rank 0 alone saved: one checkpoint, no leftover trainer state, no second writer's temp files
    assert not list((tmp_path / "two" / "trainer_state").glob("checkpoint-*"))
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.name.startswith(".")) == []
    return one, two, stderr


def test_dpo_in_two_processes_matches_one(world, sft, tmp_path):
    """Same effective batch, and the same logged losses within 1e-4 (relative): the 2-process run sees the same
    16 pairs per step (8 per rank) and DDP averages the per-rank mean losses' gradients, so only float summation
    order differs. Guards against ranks training on the same data, or gradients not averaged."""
    config = block({"learning_rate": 5e-3, "beta": 0.1, "max_steps": 4}, batch=16, module="dpo")
    one, two, _ = compare("dpo", config, tmp_path, {"prefs": world["prefs"]}, sft=sft)
    assert len(losses(one)) == len(losses(two)) == 4
    assert losses(two) == pytest.approx(losses(one), rel=1e-4)
    assert two["tokens_seen"] == one["tokens_seen"]        # counted over both ranks


def test_sft_in_two_processes_matches_one(world, base, tmp_path):
    """SFT's loss is a mean over assistant tokens; with average_tokens_across_devices the 2-process mean is the
    1-process mean, so the logged losses agree within 1e-4 (relative)."""
    config = block({"learning_rate": 3e-3, "max_steps": 4, "lr_scheduler_type": "constant"}, batch=16,
                   module="sft")
    one, two, _ = compare("sft", config, tmp_path, {"sft": world["sft"]}, sft=base)
    assert len(losses(one)) == 4
    assert losses(two) == pytest.approx(losses(one), rel=1e-4)


def test_ppo_in_two_processes_matches_one(world, sft, reward_model, tmp_path):
    """PPO's rollouts are sampled: the two runs use the same prompts per step (one global order, sliced by rank),
    but rank 1 samples its completions from its own random stream, so the numbers agree only statistically. Both
    take the same number of optimizer steps of 16 rollouts; the first step's mean reward (policy = SFT, before any
    update) agrees within 0.5: the reward's sd over samples is ~0.8 here, so two means of 16 differ with a standard
    error of ~0.27, and 0.5 is about two of them (measured: -0.12 vs -0.17; the seeds are fixed)."""
    config = block({"learning_rate": 1e-3, "num_rollout_steps": 2, "num_mini_batches": 1, "ppo_epochs": 1,
                    "max_new_tokens": 16, "temperature": 1.0, "kl_coef": 0.05, "vf_coef": 0.5}, batch=16,
                   module="ppo")
    del config["trainer"]["max_length"], config["trainer"]["logging_steps"]
    one, two, _ = compare("ppo", config, tmp_path, {"online_prompts": world["online_prompts"]}, sft=sft,
                          reward_model=reward_model)
    assert [r["optimizer_steps"] for r in one["metrics"]["train_log"]] == \
        [r["optimizer_steps"] for r in two["metrics"]["train_log"]] == [1, 2]
    assert losses(two, "reward")[0] == pytest.approx(losses(one, "reward")[0], abs=0.5)
    assert losses(two, "kl")[0] == pytest.approx(0.0, abs=1e-4)   # policy = reference at the first rollout


def test_hub_base_in_two_processes_is_saved_once_by_rank_0(base, tmp_path):
    """The base stage of a real study trains nothing: launched with 2 processes (the rehearsal's cpu_processes), rank
    0 loads and saves the hub model, the other rank returns without loading it (8 GPUs would otherwise hold 8 host
    copies of an 8B model) and without waiting on a process group rank 0 never joins."""
    out = tmp_path / "base"
    args = [sys.executable, "-m", "methods.launch", "--cpu-processes", "2", "--", "methods.base_model",
            "--config-json", json.dumps({"hub_id": str(base)}), "--seed", "0", "--out-dir", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from safetensors.torch import load_file

    assert read_provenance(out)["stage"] == "base"
    saved, hub = load_file(out / "model.safetensors"), load_file(base / "model.safetensors")
    assert saved.keys() == hub.keys() and all(saved[k].equal(hub[k]) for k in hub)
