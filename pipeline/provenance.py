"""provenance.json for every checkpoint: what produced it, from what, with which code and libraries."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.io import InputError, file_mode, read_json, write_json

LIBRARIES = ("torch", "transformers", "trl", "accelerate", "datasets", "tokenizers", "lm_eval", "vllm")
PROVENANCE = "provenance.json"
# An inference-time method's folder holds this rule over another checkpoint instead of weights (best-of-n):
# {method, wrapper: "module:Class", policy, reward_model, settings}; written by methods/train.py, applied by
# evals/backends.py make_backend.
INFERENCE_RULE = "inference_rule.json"
# What such a rule did at generation time (best-of-n: every candidate and its reward), per conversation, written by
# evals/generate.py beside the model's generations; the over-optimisation analysis reads it.
INFERENCE_TRACE = "inference_trace.jsonl"
# Trainer scratch inside a checkpoint folder (resume checkpoints, PPO's log): not part of the checkpoint.
TRAINER_STATE = "trainer_state"


def config_hash(block: Any) -> str:
    return hashlib.sha256(json.dumps(block, sort_keys=True).encode()).hexdigest()[:16]


def checkpoint_files(folder: str | Path) -> list[Path]:
    """The files that are the checkpoint: everything but provenance.json, the trainer's scratch folder and hidden
    (temporary) files, e.g. an atomic write's ``.name.XXXX.tmp`` left behind by a kill."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and not _excluded(p.relative_to(folder)))


def _excluded(relative: Path) -> bool:
    parts = relative.parts  # nested provenance.json (iterative DPO's iter<t>/) carries wall times: left out too
    return parts[-1] == PROVENANCE or TRAINER_STATE in parts or any(part.startswith(".") for part in parts)


def remove_temporary_files(folder: str | Path) -> list[Path]:
    """Delete hidden temporary files (``.*.tmp``) a killed writer left in a checkpoint folder."""
    stale = [p for p in Path(folder).rglob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink()
    return stale


def checkpoint_hash(folder: str | Path) -> str:
    """sha256 over the checkpoint's files (names and bytes): see checkpoint_files for what is left out."""
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in checkpoint_files(folder):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return versions


def read_provenance(folder: str | Path) -> dict:
    return read_json(Path(folder) / PROVENANCE, schema="provenance")


def verify_checkpoint(folder: str | Path) -> dict:
    """The provenance of a checkpoint whose files still hash to what provenance.json recorded; else one line naming
    the folder (a corrupt or half-replaced model.safetensors is never loaded silently)."""
    record = read_provenance(folder)
    actual = checkpoint_hash(folder)
    if actual != record["checkpoint_hash"]:
        raise InputError(f"{folder}: checkpoint files hash to {actual}, but {PROVENANCE} records "
                         f"{record['checkpoint_hash']}: the checkpoint is corrupt or partial; delete {Path(folder) / PROVENANCE} "
                         f"and rerun to rebuild it")
    return record


def write_provenance(folder: str | Path, *, stage: str, config_block: Any, parents: dict[str, str | Path],
                     seed: int, wall_time_s: float, tokens_seen: int, compute: dict, extra: dict | None = None) -> dict:
    """Hash the finished checkpoint and record where it came from; parents are other checkpoint folders."""
    remove_temporary_files(folder)
    for path in checkpoint_files(folder):  # safetensors creates model.safetensors 0600 whatever the umask
        os.chmod(path, file_mode())
    record = {
        "stage": stage,
        "checkpoint_hash": checkpoint_hash(folder),
        "config_hash": config_hash(config_block),
        "config": config_block,
        "parents": {role: {"path": str(path), "checkpoint_hash": read_provenance(path)["checkpoint_hash"]}
                    for role, path in parents.items()},
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "seed": seed,
        "wall_time_s": round(wall_time_s, 3),
        "tokens_seen": int(tokens_seen),
        "compute": compute,
        **(extra or {}),
    }
    write_json(Path(folder) / PROVENANCE, record, schema="provenance")
    return record
