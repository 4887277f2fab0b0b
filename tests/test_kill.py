"""kill -9 anywhere: the real Snakemake on a minimal study (one method, MT-Bench judged over HTTP by the loopback fake
server, AlpacaEval by the oracle) is SIGKILLed, with all its jobs, inside a training rule, inside generation, inside
the evaluate rule (mid-judging) and inside a forced rerun; after each kill the README's commands (`--unlock`, then the same command)
finish the study. The tables must equal those of an uninterrupted run byte for byte, and the judge server's call
count proves no answer it gave was paid for twice. Not the smoke DAG (tests/test_dag.py): about 20 s of training."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from pipeline.io import read_jsonl
from tests.evals.fake_openai_server import FakeOpenAIServer, ok, stall

ROOT = Path(__file__).resolve().parents[1]
STUDY = "kill"
TABLES = ("methods.md", "methods.csv", "methods.json", "table4.md", "table4.csv", "table5.md", "table5.csv",
          "length_analysis.md", "length_analysis.json")
WAIT_S = 600


def minimal_config(base_url: str) -> dict:
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config["study"] = STUDY
    config["world"]["splits"] = {"pretrain": 64, "sft": 128, "prefs": 32, "reward_model": 32, "online": 4,
                                 "alpaca_eval": 6, "arena_hard": 2, "mt_bench": 3, "academic_gen": 2, "academic_mc": 2}
    config["base"]["tokenizer"]["vocab_size"] = 400
    config["base"]["architecture"] = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                      "intermediate_size": 64, "max_position_embeddings": 256}
    for block, steps in ((config["base"]["pretrain"], 4), (config["sft"], 8), (config["reward_model"], 2)):
        block.update(effective_batch_size=16, per_device_train_batch_size=16)
        block["trainer"].update(max_steps=steps, logging_steps=1)
        block["trainer"].pop("warmup_steps", None)
    dpo = copy.deepcopy(config["methods"]["dpo"])
    dpo["trainer"].update(max_steps=6, logging_steps=1)
    config["methods"] = {"dpo": dpo}
    config["generation"].update(max_new_tokens=12, batch_size=16)
    config["judges"]["fake"] = {"kind": "http", "model": "fake-judge", "base_url": base_url, "concurrency": 1,
                                "max_retries": 0, "timeout_s": 300, "max_requests_per_second": 1000}
    config["evals"] = {"alpaca_eval": {**config["evals"]["alpaca_eval"], "lc_bootstrap": 2},
                       "mt_bench": {"judge": "fake"}}
    return config


class Study:
    """One working folder running this repository's Snakefile (`--directory`), as a user would."""

    def __init__(self, folder: Path, config: dict):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.configfile = folder / "study.yaml"
        self.configfile.write_text(yaml.safe_dump(config, sort_keys=False))
        self.results = folder / "results" / STUDY
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(self.folder),
                "--cores", "1", "--configfile", str(self.configfile), *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.command(*args), cwd=self.folder, env=self.env, capture_output=True, text=True,
                              timeout=WAIT_S)
        if check:
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    def kill_when(self, ready, *args: str) -> None:
        """Start the study, wait until ``ready()``, then SIGKILL Snakemake and every process it started."""
        output = self.folder / f"killed_run_{len(list(self.folder.glob('killed_run_*')))}.log"
        with output.open("w") as handle:
            proc = subprocess.Popen(self.command(*args), cwd=self.folder, env=self.env, stdout=handle,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + WAIT_S
        try:
            while not ready():
                assert proc.poll() is None, f"the run ended before the moment to kill it: {output.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "timed out waiting for the moment to kill"
                time.sleep(0.2)
        finally:
            family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)] \
                if proc.poll() is None else []
            for pid in family:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            proc.wait()

    def resume(self) -> subprocess.CompletedProcess:
        """What the README tells the user after a kill: release the stale lock, run the same command."""
        self.run("--unlock")
        return self.run()

    def tables(self) -> dict[str, bytes]:
        return {name: (self.results / "tables" / name).read_bytes() for name in TABLES}


def running(study: Study, rule_log: str):
    """True once the rule's job has started (its log exists)."""
    return lambda: (study.results / "logs" / rule_log).exists()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, with its own judge server: (tables, the request bodies the server saw)."""
    with FakeOpenAIServer(style="rating") as server:
        study = Study(tmp_path_factory.mktemp("reference"), minimal_config(server.base_url))
        study.run()
        return study.tables(), list(server.bodies)


def test_killed_anywhere_then_resumed_gives_the_same_tables_and_pays_no_judgment_twice(reference, tmp_path):
    """Bugs guarded: a killed job leaving a partial output that later runs trust; a killed forced rerun forgotten
    ("Nothing to be done" with the checkpoint's provenance gone); judge answers already received paid for again;
    resumed runs giving other numbers than an uninterrupted one."""
    tables, reference_bodies = reference
    with FakeOpenAIServer(style="rating") as server:
        study = Study(tmp_path, minimal_config(server.base_url))
        dpo = study.results / "models" / "dpo-s0" / "provenance.json"

        # 1. inside a training rule: DPO has started
        study.kill_when(running(study, "train/dpo-s0.log"))
        assert not dpo.exists()
        # 2. the same command again (after --unlock, as the README says), killed inside DPO's generation job
        study.run("--unlock")
        study.kill_when(running(study, "generate/dpo-s0.log"))
        # 3. and again, killed inside an evaluate job while it judges MT-Bench: one answer received and cached, the
        #    next one cut off (stalled)
        study.run("--unlock")
        server.script(ok(), stall(300))
        calls = server.calls
        study.kill_when(lambda: server.calls == calls + 2 and server.in_flight == 1)
        cut_off = server.bodies[-1]
        study.resume()
        assert study.tables() == tables
        # the one request the kill cut off, and nothing else, was sent again (the tiny models' equal answers make equal
        # prompts, judged once per model as in the reference run)
        assert server.calls == len(reference_bodies) + 1
        assert server.bodies.count(cut_off) == reference_bodies.count(cut_off) + 1

        # 4. a forced rerun of DPO killed after Snakemake removed its provenance.json
        before = server.calls
        study.kill_when(lambda: not dpo.exists(), "--forcerun", "train")
        proc = study.resume()
        assert "Nothing to be done" not in proc.stdout + proc.stderr
        assert dpo.exists()
        assert study.tables() == tables  # DPO retrained to the same hash, its numbers unchanged
        assert server.calls == before  # the same prompts: every answer from the judge cache
    for path in (study.results / "judge_cache").rglob("*.jsonl"):
        cache = read_jsonl(path)
        assert len({row["prompt_hash"] for row in cache}) == len(cache), path
    assert study.run("-n").stdout.count("Nothing to be done") == 1
