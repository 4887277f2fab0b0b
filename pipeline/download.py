"""Download stage of real studies, for clusters whose compute nodes have no internet: on the submit node, every hub
asset the study needs goes into one cache, which compute jobs then read offline (workflow/rules/download.smk sets
HF_HOME, HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 for them).

    python -m pipeline.download --config-json '{"data": ..., "base": ..., "reward_model": ..., "evals": ...}' --cache ~/.cache/huggingface \\
        [--mirror /path/to/root] --out results/<study>/download.json

- models (`base.hub_id`, `reward_model.init.hub_id`), the datasets of `data:` (SFT, preferences, prompts, and the
  AlpacaEval, MT-Bench and Arena-Hard files) and its single `repo`/`file` entries: into
  <cache>/MIRROR_DIR/<owner>/<name>, the local mirror layout every compute job reads through
  pipeline.hub_data.resolve_repo / fetch_file (download.smk points ALIGNMENT_BENCH_HUB_MIRROR there);
- lm-eval's standard tasks of `evals.academic`: loaded once through lm-eval's own task loading (datasets.load_dataset),
  which fills the datasets cache (<cache>/datasets) that lm-eval falls back to offline.

`--mirror ROOT` (or `data.mirror`, or ALIGNMENT_BENCH_HUB_MIRROR, as pipeline/hub_data.py) reads models and datasets
from ROOT/<owner>/<name> instead of the hub (offline test, or a site's shared copy), lm-eval's task datasets too
(their repositories named by lm-eval's task index), which the academic suite then reads from the cache's mirror.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from pipeline.cli import entry_point
from pipeline.io import InputError, write_json
from pipeline.logs import get_logger

log = get_logger("pipeline.download")

MIRROR_DIR = "alignment_bench_mirror"   # under the cache: the data stage's mirror root for compute jobs
MODEL_IGNORE = ["original/*", "*.pth", "*.pt", "*.msgpack", "*.h5", "*.onnx", "*.gguf"]   # weights transformers skips


def models(config: dict) -> list[dict]:
    """Hub models of the study: the base model and the reward model's starting model (local folders are not
    downloaded)."""
    blocks = [config.get("base", {}), config.get("reward_model", {}).get("init") or {}]
    return [{"repo": b["hub_id"], "revision": b.get("revision")} for b in blocks
            if b.get("hub_id") and not Path(b["hub_id"]).is_dir()]


def files(config: dict) -> list[dict]:
    """Single hub files named in `data:` by ``repo``/``file`` (AlpacaEval's df_gamed.csv, FastChat's MT-Bench
    reference answers): hf_hub_download puts them in the hub cache, where the data stage finds them offline."""
    return [{"kind": kind, "repo": s["repo"], "file": s["file"], "repo_type": s.get("repo_type", "dataset"),
             "revision": s.get("revision")} for kind, s in config.get("data", {}).items()
            if isinstance(s, dict) and "repo" in s and "file" in s]


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
    """A model repository into the cache's mirror folder, where pipeline.hub_data.resolve_repo finds it for the base
    model and the reward model's start, as the data stage finds the datasets."""
    target = cache / MIRROR_DIR / entry["repo"]
    if mirror is None:
        from huggingface_hub import snapshot_download

        return snapshot_download(entry["repo"], revision=entry["revision"], local_dir=target,
                                 ignore_patterns=MODEL_IGNORE)
    shutil.copytree(mirror_folder(mirror, entry["repo"]), target, dirs_exist_ok=True)
    return str(target)


def fetch_file(entry: dict, cache: Path, mirror: Path | None) -> str:
    """One file of a hub repository into the cache's mirror folder (``<repo>/<file>``, as hub_data.fetch_file reads)."""
    target = cache / MIRROR_DIR / entry["repo"]
    if mirror is None:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(entry["repo"], entry["file"], repo_type=entry["repo_type"], revision=entry["revision"],
                               local_dir=target)
    source = mirror_folder(mirror, entry["repo"]) / entry["file"]
    if not source.is_file():
        raise InputError(f"--mirror {mirror}: no file {source} for config key data.{entry['kind']}")
    (target / entry["file"]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target / entry["file"])
    return str(target / entry["file"])


def fetch_dataset(entry: dict, cache: Path, mirror: Path | None) -> str:
    target = cache / MIRROR_DIR / entry["repo"]
    if mirror is None:
        from huggingface_hub import snapshot_download

        patterns = None if entry["files"] is None else [*entry["files"], "README.md"]
        return snapshot_download(entry["repo"], repo_type="dataset", revision=entry["revision"], local_dir=target,
                                 allow_patterns=patterns)
    shutil.copytree(mirror_folder(mirror, entry["repo"]), target, dirs_exist_ok=True)
    return str(target)


def lm_eval_dataset_repos(names: list[str]) -> list[tuple[str, str]]:
    """(task, dataset repository) of lm-eval's tasks, groups expanded, from its task index (no dataset is loaded)."""
    from lm_eval.tasks import TaskManager

    index, found = TaskManager().task_index, []

    def walk(task: str, name: str) -> None:
        entry = index.get(name)
        if entry is None or entry.cfg is None:
            raise InputError(f"config key evals.academic.tasks: lm-eval has no task {name!r} (in {task!r})")
        subtasks = entry.cfg.get("task")
        if isinstance(subtasks, list):   # a group: its tasks
            for sub in subtasks:
                walk(task, sub if isinstance(sub, str) else sub["task"])
        elif entry.cfg.get("dataset_path"):
            found.append((task, entry.cfg["dataset_path"]))

    for name in names:
        walk(name, name)
    return list(dict.fromkeys(found))


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


def download(config: dict, cache: Path, mirror: Path | None) -> dict:
    manifest = {"cache": str(cache), "mirror": str(mirror) if mirror else None, "models": [], "datasets": [],
                "files": [], "lm_eval_tasks": []}
    for entry in models(config):
        manifest["models"].append({**entry, "path": fetch_model(entry, cache, mirror)})
        log.info("model %s -> %s", entry["repo"], manifest["models"][-1]["path"])
    for entry in datasets(config):
        manifest["datasets"].append({**entry, "path": fetch_dataset(entry, cache, mirror)})
        log.info("dataset %s (%s) -> %s", entry["repo"], ", ".join(entry["kinds"]), manifest["datasets"][-1]["path"])
    for entry in files(config):
        manifest["files"].append({**entry, "path": fetch_file(entry, cache, mirror)})
        log.info("file %s of %s (%s) -> %s", entry["file"], entry["repo"], entry["kind"], manifest["files"][-1]["path"])
    tasks = lm_eval_tasks(config)
    if tasks and mirror is not None:   # the tasks' dataset repositories, copied as the others (read by hub_data's
        for task, repo in lm_eval_dataset_repos(tasks):   # mirror_workdir, where load_dataset finds owner/name)
            path = fetch_dataset({"repo": repo, "revision": None, "files": None}, cache, mirror)
            manifest["lm_eval_tasks"].append({"task": task, "repo": repo, "path": path, "fetched": True})
            log.info("lm-eval task %s: dataset %s -> %s", task, repo, path)
    elif tasks:
        manifest["lm_eval_tasks"] = fetch_lm_eval_tasks(tasks)
        log.info("lm-eval tasks %s: %d datasets", tasks, len(manifest["lm_eval_tasks"]))
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-json", required=True, help="the study config (its data, base, reward_model and evals blocks)")
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
