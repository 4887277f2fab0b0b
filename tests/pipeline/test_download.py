"""The download stage (pipeline/download.py) for clusters whose compute nodes have no internet: on
config/rlhf_workflow.yaml's own asset list, from a tiny local mirror laid out as the hub repositories (the only thing
faked is the network), into one cache that the data stage and transformers then read with the hub switched off."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.download import MIRROR_DIR, datasets, files, lm_eval_tasks, main, models
from pipeline.io import InputError
from tests.pipeline.test_hub_data import CONFIG, hub, small_data_block  # noqa: F401 - `hub` is a fixture

ROOT = Path(__file__).resolve().parents[2]
BASE = CONFIG["base"]["hub_id"]
HF_VARIABLES = ("HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "ALIGNMENT_BENCH_HUB_MIRROR")


def clean_env(**extra: str) -> dict:
    return {**{k: v for k, v in os.environ.items() if k not in HF_VARIABLES}, **extra}


def test_asset_list_covers_every_hub_asset_of_the_real_study():
    """Guards against a compute job meeting an asset the download skipped: every `data:` dataset (one fetch per
    repository, narrowed to its data_files), the base model, and lm-eval's standard tasks of the study."""
    repos = {e["repo"]: e for e in datasets(CONFIG)}
    assert set(repos) == {s["dataset"] for s in CONFIG["data"].values() if isinstance(s, dict) and "dataset" in s}
    assert repos["tatsu-lab/alpaca_eval"]["files"] == ["alpaca_eval_gpt4_baseline.json"]
    assert repos["berkeley-nest/Nectar"]["files"] is None
    assert models(CONFIG) == [{"repo": BASE, "revision": None},
                              {"repo": CONFIG["reward_model"]["init"]["hub_id"], "revision": None}]
    assert {(f["kind"], f["repo"]) for f in files(CONFIG)} == {(kind, s["repo"]) for kind, s in CONFIG["data"].items()
                                                                if isinstance(s, dict) and "file" in s}
    assert lm_eval_tasks(CONFIG) == [t["name"] for t in CONFIG["evals"]["academic"]["tasks"]]


def test_local_model_folder_and_local_lm_eval_tasks_need_no_download(tmp_path):
    config = {"base": {"hub_id": str(tmp_path)},
              "evals": {"academic": {"tasks": [{"name": "micro_arith_gen", "data": "academic_gen"}]}}}
    assert models(config) == [] and lm_eval_tasks(config) == []


def test_mirror_without_a_repository_names_it(hub, tmp_path):
    config = {"data": {"sft": {"dataset": "nobody/missing"}}}
    with pytest.raises(InputError, match="nobody/missing"):
        main(["--config-json", json.dumps(config), "--cache", str(tmp_path / "cache"), "--mirror", str(hub),
              "--out", str(tmp_path / "manifest.json")])


def test_download_fills_one_cache_that_offline_jobs_read(hub, tmp_path):
    """The entry point from a mirror, then, with HF_HUB_OFFLINE=1 and the cache as HF_HOME (as download.smk sets for
    compute jobs), the real data stage writes every file and transformers loads the base model from the folder
    pipeline.hub_data.resolve_repo finds for its hub id (as methods/base_model.py does)."""
    from tests.evals.test_academic import make_tokenizer
    from transformers import LlamaConfig

    model_dir = hub / BASE
    make_tokenizer().save_pretrained(model_dir)
    LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2).save_pretrained(model_dir)
    for repo in ("openai/gsm8k", "allenai/ai2_arc"):   # lm-eval's task datasets, as the mirror holds them
        (hub / repo).mkdir(parents=True, exist_ok=True)
        (hub / repo / "README.md").write_text("---\nconfigs: []\n---\n")
    academic = {"tasks": [{"name": "gsm8k", "num_fewshot": 8}, {"name": "arc_challenge", "num_fewshot": 25}]}
    config = {"data": small_data_block(), "base": CONFIG["base"], "evals": {"academic": academic}}
    cache, manifest = tmp_path / "cache", tmp_path / "manifest.json"
    proc = subprocess.run([sys.executable, "-m", "pipeline.download", "--config-json", json.dumps(config),
                           "--cache", str(cache), "--mirror", str(hub), "--out", str(manifest)],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fetched = json.loads(manifest.read_text())
    assert len(fetched["datasets"]) == len(datasets(config)) and len(fetched["models"]) == 1
    assert [(t["task"], t["repo"]) for t in fetched["lm_eval_tasks"]] == [("gsm8k", "openai/gsm8k"),
                                                                           ("arc_challenge", "allenai/ai2_arc")]
    assert (cache / MIRROR_DIR / "openai/gsm8k" / "README.md").is_file()

    offline = clean_env(HF_HOME=str(cache), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                        ALIGNMENT_BENCH_HUB_MIRROR=str(cache / MIRROR_DIR))
    check = (f"from transformers import AutoConfig, AutoTokenizer; from pipeline.hub_data import resolve_repo; "
             f"p, _ = resolve_repo({BASE!r}, None, 'base'); c = AutoConfig.from_pretrained(p); "
             f"t = AutoTokenizer.from_pretrained(p); print(c.hidden_size, len(t))")
    proc = subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=offline, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.split()[0] == "16", proc.stderr[-2000:]
    data = {**small_data_block(), "mirror": None}
    proc = subprocess.run([sys.executable, "-m", "pipeline.hub_data", "--config-json", json.dumps(data), "--seed", "0",
                           "--out-dir", str(tmp_path / "data")], cwd=ROOT, env=offline, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "data" / "sft.jsonl").stat().st_size > 0
