"""Same config, same seed, same parents -> byte-identical checkpoints (pipeline/provenance.py's checkpoint hash), for
every training stage. Each test trains a stage twice on the tiny fixtures of conftest.py and compares the hashes."""

from __future__ import annotations

import pytest

from methods.reward_model import train_reward_model
from methods.train import run
from pipeline.io import InputError
from pipeline.provenance import checkpoint_hash, read_provenance, verify_checkpoint
from tiny_setup import block

PPO = {"learning_rate": 1e-3, "num_rollout_steps": 3, "num_mini_batches": 2, "ppo_epochs": 1, "max_new_tokens": 12,
       "temperature": 1.0, "kl_coef": 0.05, "logging_steps": 1}
GRPO = {"learning_rate": 3e-3, "max_steps": 2, "num_generations": 4, "max_completion_length": 12, "temperature": 1.0,
        "beta": 0.02, "loss_type": "dapo", "logging_steps": 1}


def twice(train, tmp_path) -> tuple[str, str]:
    hashes = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        record = train(out)
        assert record["checkpoint_hash"] == checkpoint_hash(out)
        hashes.append(record["checkpoint_hash"])
    return hashes[0], hashes[1]


def test_sft_retrained_gives_the_same_checkpoint(world, base, tmp_path):
    """Bug guarded: an unseeded initialisation or data order in the SFT stage."""
    first, second = twice(lambda out: run("sft", block({"learning_rate": 3e-3, "max_steps": 4}, batch=16, module="sft"),
                                          seed=0, policy=base, reference=base, data={"sft": world["sft"]},
                                          reward_model=None, out_dir=out), tmp_path)
    assert first == second


def test_reward_model_retrained_gives_the_same_checkpoint(world, sft, tmp_path):
    """Bug guarded: the score head initialised by from_pretrained before any seed is set (every run differed, and
    with it PPO, GRPO, iterative DPO and the style-controlled Arena-Hard fit)."""
    first, second = twice(lambda out: train_reward_model(block({"learning_rate": 3e-3, "max_steps": 4}, batch=16),
                                                         seed=0, sft=sft, prefs=world["rm_prefs"], out_dir=out),
                          tmp_path)
    assert first == second


def test_reward_model_seed_matters(world, sft, tmp_path):
    """Bug guarded: a test of determinism that passes because nothing random is left (the seed must change weights)."""
    hashes = {train_reward_model(block({"learning_rate": 3e-3, "max_steps": 2}, batch=16), seed=seed, sft=sft,
                                 prefs=world["rm_prefs"], out_dir=tmp_path / str(seed))["checkpoint_hash"]
              for seed in (0, 1)}
    assert len(hashes) == 2


def test_dpo_retrained_gives_the_same_checkpoint(world, sft, tmp_path):
    """Bug guarded: nondeterministic data order or dropout in an offline method."""
    first, second = twice(lambda out: run("dpo", block({"learning_rate": 5e-3, "beta": 0.1, "max_steps": 3},
                                                       module="dpo"), seed=0, policy=sft, reference=sft,
                                          data={"prefs": world["prefs"]}, reward_model=None, out_dir=out), tmp_path)
    assert first == second


def test_ppo_retrained_gives_the_same_checkpoint_and_keeps_its_log_out_of_the_hash(world, sft, reward_model,
                                                                                    tmp_path):
    """Bug guarded: PPO's training log (with step timings) appended inside the hashed checkpoint folder, so the hash
    changed on every rerun; and sampling not seeded."""
    config = block(PPO, module="ppo")
    del config["trainer"]["max_length"]

    def train(out):
        return run("ppo", config, seed=0, policy=sft, reference=sft, data={"online_prompts": world["online_prompts"]},
                   reward_model=reward_model, out_dir=out)

    first, second = twice(train, tmp_path)
    assert first == second
    log = tmp_path / "first" / "trainer_state" / "ppo_log.jsonl"
    assert log.is_file()  # the log is still written, outside what the hash covers
    before = checkpoint_hash(tmp_path / "first")
    train(tmp_path / "first")  # a rerun into the same folder: the log must not be appended to
    assert len(log.read_text().splitlines()) == PPO["num_rollout_steps"]
    assert checkpoint_hash(tmp_path / "first") == before


def test_grpo_retrained_gives_the_same_checkpoint(world, sft, reward_model, tmp_path):
    """Bug guarded: unseeded sampling of GRPO's groups (or a differing reward model) changing the policy."""
    config = block(GRPO, batch=16, module="grpo")
    del config["trainer"]["max_length"]
    first, second = twice(lambda out: run("grpo", config, seed=0, policy=sft, reference=sft,
                                          data={"online_prompts": world["online_prompts"]},
                                          reward_model=reward_model, out_dir=out), tmp_path)
    assert first == second


def test_leftover_temp_file_is_neither_hashed_nor_kept(sft, tmp_path):
    """Bug guarded: a `.tmp` file left by a killed atomic write sits inside the checkpoint and changes its hash."""
    import shutil

    from pipeline.provenance import write_provenance

    folder = tmp_path / "ckpt"
    shutil.copytree(sft, folder)
    clean = checkpoint_hash(folder)
    (folder / ".config.json.abc123.tmp").write_text("half a file")
    assert checkpoint_hash(folder) == clean
    write_provenance(folder, stage="sft", config_block={}, parents={}, seed=0, wall_time_s=0.0, tokens_seen=0,
                     compute=read_provenance(sft)["compute"])
    assert not list(folder.glob("*.tmp"))


def test_corrupt_safetensors_is_caught_by_its_provenance_hash(world, sft, tmp_path):
    """Bug guarded: a corrupt model.safetensors loaded without checking its hash (training on a broken parent)."""
    import shutil

    folder = tmp_path / "sft"
    shutil.copytree(sft, folder)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"sft: checkpoint files hash to \w+, but provenance.json records \w+"):
        verify_checkpoint(folder)
    with pytest.raises(InputError, match="corrupt or partial"):
        run("dpo", block({"learning_rate": 5e-3, "beta": 0.1, "max_steps": 1}, module="dpo"), seed=0, policy=folder,
            reference=folder, data={"prefs": world["prefs"]}, reward_model=None, out_dir=tmp_path / "dpo")


def test_checkpoint_files_honour_the_umask(sft):
    """Bug guarded: model.safetensors written 0600 by safetensors whatever the umask (unreadable to the group on a
    shared cluster); write_provenance gives every checkpoint file the mode open() would."""
    import stat

    from pipeline.io import file_mode
    from pipeline.provenance import checkpoint_files

    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in checkpoint_files(sft)}
    assert "model.safetensors" in modes and set(modes.values()) == {file_mode()}, modes


def test_iterative_dpo_rerun_gives_the_same_checkpoint(world, sft, reward_model, tmp_path):
    """Bug guarded: unseeded sampling or a nondeterministic reward model making iterative DPO's pairs, and with them
    its policy, differ between two runs of one config."""
    from methods.iterative_dpo import finalize_stage, iteration_stage

    config = block({"learning_rate": 5e-3, "beta": 0.1, "max_steps": 2}, module="iterative_dpo", iterations=2,
                   samples_per_prompt=4, length_penalty=0.0,
                   sampling={"temperature": 1.0, "max_new_tokens": 12, "batch_size": 64})

    def train(out):
        policy = sft
        for t in (1, 2):
            iteration_stage("iterative_dpo", config, seed=0, iteration=t, policy=policy, reference=sft,
                            reward_model=reward_model, prompts=world["online_prompts"],
                            samples_dir=work(out) / f"iter{t}", out_dir=out / f"iter{t}")
            policy = out / f"iter{t}"
        return finalize_stage("iterative_dpo", config, seed=0, sft=sft, reward_model=reward_model,
                              iterations_root=work(out), out_dir=out)

    def work(out):  # samples, pairs and stats live outside the checkpoint, as in the DAG (results/iterative/)
        return out.parent / f"{out.name}_work"


    first, second = twice(train, tmp_path)
    assert first == second
    assert ((tmp_path / "first_work" / "iter2" / "pairs.jsonl").read_bytes()
            == (tmp_path / "second_work" / "iter2" / "pairs.jsonl").read_bytes())


def test_a_job_forked_from_the_warm_server_trains_the_checkpoint_of_a_fresh_interpreter(world, sft, warm_server,
                                                                                        tmp_path):
    """Bug guarded: state of the warm server (pipeline/warm.py) leaking into a forked job: its RNG, its torch
    threads, a library's import-time setting. The rule's own command line, run warm and cold."""
    import json
    import os
    import subprocess
    import sys

    from pipeline.warm import SOCKET_ENV

    socket_path, server_log = warm_server
    config = block({"learning_rate": 5e-3, "beta": 0.1, "max_steps": 3}, module="dpo")
    hashes = {}
    for mode in ("warm", "cold"):
        env = {k: v for k, v in os.environ.items() if k != SOCKET_ENV} | {"OMP_NUM_THREADS": "1"}
        if mode == "warm":
            env[SOCKET_ENV] = str(socket_path)
        out = tmp_path / mode
        subprocess.run([sys.executable, "-m", "pipeline.warm", "-m", "methods.launch", "--", "methods.train",
                        "--method", "dpo", "--block-json", json.dumps(config), "--seed", "0", "--policy", str(sft),
                        "--reference", str(sft), "--data", f"prefs={world['prefs']}", "--out-dir", str(out)],
                       env=env, check=True, capture_output=True)
        hashes[mode] = read_provenance(out)["checkpoint_hash"]
    assert f"methods.launch -- methods.train (in {os.getcwd()})" in server_log.read_text()   # it ran warm
    assert hashes["warm"] == hashes["cold"]
