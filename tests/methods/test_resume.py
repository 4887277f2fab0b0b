"""Preemption (methods/common.train_resuming): a training job killed after its first saved checkpoint, rerun with
the same command, continues from that checkpoint and ends with the weights of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from methods.common import last_checkpoint, trainer_dir
from methods.train import run
from pipeline.provenance import read_provenance
from tiny_setup import block

ROOT = Path(__file__).resolve().parents[2]
CONFIG = block({"learning_rate": 5e-3, "beta": 0.1, "max_steps": 24, "save_steps": 2}, batch=16, module="dpo")


def command(world, sft, out_dir):
    return [sys.executable, "-m", "methods.launch", "--", "methods.train", "--method", "dpo",
            "--block-json", json.dumps(CONFIG), "--seed", "0", "--policy", str(sft), "--reference", str(sft),
            "--data", f"prefs={world['prefs']}", "--out-dir", str(out_dir)]


def test_killed_dpo_job_resumes_from_its_checkpoint(world, sft, tmp_path):
    """Guards against a preempted 24-hour job restarting from step 0 (save_strategy off), and against a resume that
    restarts the data order, the optimizer or the schedule (the final weights would differ)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = tmp_path / "killed"
    job = subprocess.Popen(command(world, sft, out), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while last_checkpoint(trainer_dir(out)) is None and job.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert job.poll() is None, "the job ended before it could be killed (make max_steps larger)"
    job.send_signal(signal.SIGKILL)
    job.wait()
    killed_at = int(last_checkpoint(trainer_dir(out)).name.split("-")[1])
    assert 2 <= killed_at < 24 and not (out / "provenance.json").exists()

    rerun = subprocess.run(command(world, sft, out), cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming from {trainer_dir(out)}/checkpoint-{killed_at} (step {killed_at})" in rerun.stderr
    steps = [row["step"] for row in read_provenance(out)["metrics"]["train_log"] if "loss" in row]
    assert steps == list(range(1, 25))        # the log continues the killed run's (restored from its checkpoint)
    assert last_checkpoint(trainer_dir(out)) is None      # removed once the checkpoint is saved

    uninterrupted = tmp_path / "uninterrupted"
    run("dpo", CONFIG, seed=0, policy=sft, reference=sft, data={"prefs": world["prefs"]}, reward_model=None,
        out_dir=uninterrupted)
    resumed, full = load_file(out / "model.safetensors"), load_file(uninterrupted / "model.safetensors")
    assert resumed.keys() == full.keys()
    assert all(torch.equal(resumed[k], full[k]) for k in full), "resumed weights differ from an uninterrupted run"


def test_checkpoints_of_another_run_are_not_resumed(world, sft, tmp_path):
    """A stale trainer state (a killed run with another learning rate) is discarded, not resumed."""
    out = tmp_path / "dpo"
    stale = trainer_dir(out) / "checkpoint-2"
    stale.mkdir(parents=True)
    (stale / "trainer_state.json").write_text("{}")
    (trainer_dir(out) / "run.json").write_text(json.dumps({"args": {"learning_rate": 1.0}}))
    config = block({"learning_rate": 5e-3, "beta": 0.1, "max_steps": 2}, batch=16, module="dpo")
    record = run("dpo", config, seed=0, policy=sft, reference=sft, data={"prefs": world["prefs"]},
                 reward_model=None, out_dir=out)
    assert [row["step"] for row in record["metrics"]["train_log"] if "loss" in row] == [1, 2]


def test_ppo_resumes_from_its_checkpoint_with_the_uninterrupted_weights(sft, tmp_path):
    """Our PPO trainer (methods/ppo_trainer.py) has no Trainer underneath: its checkpoint must restore model,
    optimizer, RNG, prompt order and counters, or a resumed run diverges from an uninterrupted one."""
    from methods.common import load_policy
    from methods.ppo_trainer import PPOConfig, PPOTrainer

    def trainer(out):
        policy, tokenizer = load_policy(sft)
        reference, _ = load_policy(sft)
        config = PPOConfig(learning_rate=1e-3, per_device_train_batch_size=4, mini_batch_size=4, ppo_epochs=1,
                           num_rollout_steps=4, max_new_tokens=8, temperature=1.0, save_steps=2, seed=0,
                           use_cpu=True, disable_tqdm=True, output_dir=str(out))
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": f"add {i} and {i + 1}"}],
                                                 tokenize=False, add_generation_prompt=True) for i in range(6)]
        return PPOTrainer(config, policy, reference, tokenizer, lambda p, c: [len(x) / 10 for x in c], prompts)

    full = trainer(tmp_path / "full")
    full.train()
    first = trainer(tmp_path / "killed")
    first.step(), first.step()
    checkpoint = first.save_checkpoint()           # what train() does at step 2, before the job is killed
    resumed = trainer(tmp_path / "killed")
    history = resumed.train(resume_from_checkpoint=checkpoint)
    assert [row["step"] for row in history] == [1, 2, 3, 4] and resumed.optimizer_steps == full.optimizer_steps
    assert all(torch.equal(a, b) for a, b in zip(resumed.policy.state_dict().values(),
                                                full.policy.state_dict().values()))
