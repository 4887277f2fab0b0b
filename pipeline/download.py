"""Download stage of real studies, for clusters whose compute nodes have no internet: on the submit node, every hub
asset the study needs goes into one cache, which compute jobs then read offline (workflow/rules/download.smk sets
HF_HOME, HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 for them).

    python -m pipeline.download --config-json '{"data": ..., "base": ..., "evals": ...}' --cache ~/.cache/huggingface \\
        [--mirror /path/to/root] --out results/<study>/download.json

- models (`base.hub_id`): huggingface_hub.snapshot_download into the hub cache (<cache>/hub), where
  `from_pretrained(hub_id)` finds them offline;
- the datasets of `data:` (SFT, preferences, prompts, and the AlpacaEval, MT-Bench and Arena-Hard files): snapshot
  into <cache>/MIRROR_DIR/<owner>/<name>, the local mirror layout the data stage (pipeline/hub_data.py) reads;
- lm-eval's standard tasks of `evals.academic`: loaded once through lm-eval's own task loading (datasets.load_dataset),
  which fills the datasets cache (<cache>/datasets) that lm-eval falls back to offline.

`--mirror ROOT` (or `data.mirror`, or ALIGNMENT_BENCH_HUB_MIRROR, as pipeline/hub_data.py) reads models and datasets
from ROOT/<owner>/<name> instead of the hub (offline test, or a site's shared copy). lm-eval task data cannot be
served from a mirror (lm-eval reads them by hub id): in mirror mode they are listed as not fetched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

from pipeline.cli import entry_point
from pipeline.io import InputError, write_json, write_text
from pipeline.logs import get_logger

log = get_logger("pipeline.download")

MIRROR_DIR = "alignment_bench_mirror"   # under the cache: the data stage's mirror root for compute jobs
MODEL_IGNORE = ["original/*", "*.pth", "*.pt", "*.msgpack", "*.h5", "*.onnx", "*.gguf"]   # weights transformers skips


def models(config: dict) -> list[dict]:
    """Hub models of the study: the base model (a local folder is not downloaded)."""
    base = config.get("base", {})
    hub_id = base.get("hub_id")
    if not hub_id or Path(hub_id).is_dir():
        return []
    return [{"repo": hub_id, "revision": base.get("revision")}]


def datasets(config: dict) -> list[dict]:
    """Every dataset named in `data:` (one entry per repository and revision; data_files narrow what is fetched)."""
    found: dict[tuple, dict] = {}
    for kind, source in config.get("data", {}).items():
        if not isinstance(source, dict) or "dataset" not in source:
            continue
        entry = found.setdefault((source["dataset"], source.get("revision")),
                                 {"repo": source["dataset"], "revision": source.get("revision"), "files": [],
                                  "kinds": []})
        entry["kinds"].append(kind)
        files = source.get("data_files")
        if files is None:
            entry["files"] = None   # the whole repository
        elif entry["files"] is not None:
            values = files.values() if isinstance(files, dict) else [files]
            entry["files"] += [f for v in values for f in (v if isinstance(v, list) else [v])]
    return list(found.values())


def lm_eval_tasks(config: dict) -> list[str]:
    """lm-eval's standard tasks of the academic suite (local templates, which name a `data` file, need nothing)."""
    academic = config.get("evals", {}).get("academic") or {}
    return [t["name"] for t in academic.get("tasks", []) if "data" not in t]


def fetch_model(entry: dict, cache: Path, mirror: Path | None) -> str:
    if mirror is None:
        from huggingface_hub import snapshot_download

        return snapshot_download(entry["repo"], revision=entry["revision"], cache_dir=cache / "hub",
                                 ignore_patterns=MODEL_IGNORE)
    return install_in_hub_cache(mirror_folder(mirror, entry["repo"]), cache / "hub", entry["repo"],
                                entry["revision"])


def fetch_dataset(entry: dict, cache: Path, mirror: Path | None) -> str:
    target = cache / MIRROR_DIR / entry["repo"]
    if mirror is None:
        from huggingface_hub import snapshot_download

        patterns = None if entry["files"] is None else [*entry["files"], "README.md"]
        return snapshot_download(entry["repo"], repo_type="dataset", revision=entry["revision"], local_dir=target,
                                 allow_patterns=patterns)
    shutil.copytree(mirror_folder(mirror, entry["repo"]), target, dirs_exist_ok=True)
    return str(target)


def fetch_lm_eval_tasks(names: list[str]) -> list[dict]:
    """lm-eval's own loading of the tasks (downloads their datasets into the datasets cache); what each reads."""
    from lm_eval.tasks import TaskManager, get_task_dict

    def leaves(tasks: dict) -> list:
        return [t for v in tasks.values() for t in (leaves(v) if isinstance(v, dict) else [v])]

    fetched = []
    for task in leaves(get_task_dict(names, TaskManager())):
        fetched.append({"task": task.config.task, "dataset": task.config.dataset_path,
                        "config": task.config.dataset_name})
    return fetched


def mirror_folder(mirror: Path, repo: str) -> Path:
    folder = mirror / repo
    if not folder.is_dir():
        raise InputError(f"--mirror {mirror}: no folder {folder} for hub repository {repo!r}")
    return folder


def install_in_hub_cache(folder: Path, hub_cache: Path, repo: str, revision: str | None) -> str:
    """A copy of a model folder laid out as huggingface_hub's cache (models--owner--name/snapshots/<commit>,
    refs/<revision>), so that `from_pretrained(repo)` finds it with HF_HUB_OFFLINE=1."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    commit = hashlib.sha1("".join(f"{p.relative_to(folder)}:{p.stat().st_size}" for p in files).encode()).hexdigest()
    root = hub_cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    shutil.copytree(folder, snapshot, dirs_exist_ok=True)
    write_text(root / "refs" / (revision or "main"), commit)
    return str(snapshot)


def download(config: dict, cache: Path, mirror: Path | None) -> dict:
    manifest = {"cache": str(cache), "mirror": str(mirror) if mirror else None, "models": [], "datasets": [],
                "lm_eval_tasks": []}
    for entry in models(config):
        manifest["models"].append({**entry, "path": fetch_model(entry, cache, mirror)})
        log.info("model %s -> %s", entry["repo"], manifest["models"][-1]["path"])
    for entry in datasets(config):
        manifest["datasets"].append({**entry, "path": fetch_dataset(entry, cache, mirror)})
        log.info("dataset %s (%s) -> %s", entry["repo"], ", ".join(entry["kinds"]), manifest["datasets"][-1]["path"])
    tasks = lm_eval_tasks(config)
    if tasks and mirror is not None:
        log.warning("lm-eval tasks %s not fetched: lm-eval reads their datasets by hub id, not from a mirror", tasks)
        manifest["lm_eval_tasks"] = [{"task": t, "fetched": False} for t in tasks]
    elif tasks:
        manifest["lm_eval_tasks"] = fetch_lm_eval_tasks(tasks)
        log.info("lm-eval tasks %s: %d datasets", tasks, len(manifest["lm_eval_tasks"]))
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-json", required=True, help="the study config (its data, base and evals blocks)")
    parser.add_argument("--cache", type=Path, required=True, help="the cache compute jobs read (their HF_HOME)")
    parser.add_argument("--mirror", type=Path, help="read from this local mirror root instead of the hub")
    parser.add_argument("--out", type=Path, required=True, help="the manifest of what was fetched (JSON)")
    args = parser.parse_args(argv)
    # The one stage that may reach the hub: the study's offline flags are for the compute jobs.
    os.environ.update(HF_HOME=str(args.cache.resolve()), HF_HUB_OFFLINE="0" if args.mirror is None else "1",
                      HF_DATASETS_OFFLINE="0" if args.mirror is None else "1")
    write_json(args.out, download(json.loads(args.config_json), args.cache.resolve(), args.mirror))


if __name__ == "__main__":
    entry_point(main)
