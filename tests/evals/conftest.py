"""Shared fixtures of the suite tests: a small micro world's evaluation files (written by the real data stage) and
answers from scripted models (a fake backend: no torch, so these tests take milliseconds)."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
import yaml

from world.tasks import ANSWER_PREFIX

ROOT = Path(__file__).resolve().parents[2]
SPLITS = {"pretrain": 2, "sft": 2, "prefs": 2, "reward_model": 2, "online": 2, "alpaca_eval": 24, "arena_hard": 12,
          "mt_bench": 6, "academic_gen": 4, "academic_mc": 4}
CHAT_SUITES = ("alpaca_eval", "mt_bench", "arena_hard")


def smoke_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


class ScriptedBackend:
    """A backend whose "model" answers from the gold items: ``style`` concise (the gold answer), verbose (the gold
    answer padded), wrong; it records every generate call."""

    def __init__(self, items: list[dict], style: str = "concise", seed: int = 0):
        self.style, self.rng = style, random.Random(seed)
        self.first = {it["turns"][0]: it for it in items}
        self.calls: list[tuple[list[list[dict]], dict]] = []

    def gold(self, conversation: list[dict]) -> str:
        item = self.first[conversation[0]["content"]]
        return item["golds"][(len(conversation) - 1) // 2]

    def answer(self, conversation: list[dict]) -> str:
        gold = self.gold(conversation)
        if self.style == "concise":
            return gold
        if self.style == "verbose":
            return f"Sure! Let me think about this carefully. {ANSWER_PREFIX}{gold}. I hope this helps! Have a nice day!"
        return gold + "0"

    def generate(self, conversations, **overrides):
        self.calls.append((conversations, overrides))
        return [self.answer(c) for c in conversations]


@pytest.fixture(scope="session")
def eval_data(tmp_path_factory) -> dict[str, Path]:
    """The data stage's files for a small world: {kind: path}."""
    from world.data import OUTPUTS, write_world_data

    world = copy.deepcopy(smoke_config()["world"])
    world["splits"] = dict(SPLITS)
    out = tmp_path_factory.mktemp("data")
    write_world_data(world, out)
    return {kind: out / name for kind, name in OUTPUTS.items()}


@pytest.fixture(scope="session")
def config() -> dict:
    return smoke_config()


@pytest.fixture(scope="session")
def generate_for(eval_data, config, tmp_path_factory):
    """generate_for(model, style) -> (generation folder, backend): the chat suites answered by a scripted model."""
    from evals.generate import generate_all
    from evals.registry import get_suite
    from pipeline.io import read_jsonl

    items = read_jsonl(eval_data["eval_items"])
    made: dict[tuple[str, str], tuple[Path, ScriptedBackend]] = {}

    def make(model: str, style: str) -> tuple[Path, ScriptedBackend]:
        if (model, style) not in made:
            out = tmp_path_factory.mktemp(f"generations_{model}")
            backend = ScriptedBackend(items, style)
            suites = {name: get_suite(name) for name in CHAT_SUITES}
            generate_all(backend, suites, config["evals"], eval_data, model, 0, out)
            made[(model, style)] = (out, backend)
        return made[(model, style)]

    return make
