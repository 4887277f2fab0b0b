"""The shipped study configs the per-config tests walk: every config/*.yaml that is a complete study (it has each
top-level key the config schema requires). An overlay such as config/rehearsal.yaml only modifies another study
config; it is checked merged onto that config (tests/test_dag.py dry-runs it)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.io import load_schema

ROOT = Path(__file__).resolve().parents[1]


def study_configs() -> list[Path]:
    required = set(load_schema("config")["required"])
    return [path for path in sorted((ROOT / "config").glob("*.yaml"))
            if required <= set(yaml.safe_load(path.read_text()) or {})]
