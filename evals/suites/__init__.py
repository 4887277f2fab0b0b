"""One module per evaluation suite, each registering a suite class with ``evals.registry.register_suite``; shared
helpers for score files and the micro world's gold answers live here. Nothing here imports torch or scikit-learn.

The upstream protocols themselves (prompts, parsers, metrics) are pure functions in ``evals/protocols/alpaca_eval_protocol.py``,
``evals/protocols/mt_bench_protocol.py``, ``evals/protocols/arena_hard_protocol.py`` and ``evals/protocols/academic_protocol.py``; a suite module wires them to files.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

from pipeline.io import InputError, read_jsonl

# The data kind of the micro world's gold items (world/data.py OUTPUTS); optional in every stage: studies without
# a micro world have no gold answers, and the oracle judge cannot run without them.
GOLD = "eval_items"


def metric(value: float, stderr: float | None = None, n: int | None = None, **extra: Any) -> dict[str, Any]:
    """One entry of a score file's ``metrics``; NaN standard errors become null."""
    if stderr is not None and not math.isfinite(float(stderr)):
        stderr = None
    return {"value": float(value), "stderr": None if stderr is None else float(stderr), "n": n, **extra}


def read_items(items: Path | None) -> dict[str, dict] | None:
    """The micro world's gold items by ``item_id`` (None in studies without gold answers)."""
    if items is None:
        return None
    return {item["item_id"]: item for item in read_jsonl(items, schema="item")}


def items_of_suite(items: Mapping[str, dict] | None, suite: str) -> dict[str, dict]:
    """Gold items of one suite, keyed by their first turn (the instruction every suite file repeats)."""
    return {it["turns"][0]: it for it in (items or {}).values() if it["suite"] == suite}


def gold_metrics(answers: Iterable[tuple[str, str, str]], gold_reward: Mapping[str, float], suffix: str = "") -> dict:
    """Micro world only: gold accuracy (%) and gold reward of (family, answer, gold) triples, overall and per family."""
    import numpy as np

    from world.tasks import is_correct
    from world.truth import GoldReward

    answers = list(answers)
    reward = GoldReward(**gold_reward)
    correct = np.array([is_correct(a, g) for _, a, g in answers], dtype=float)
    rewards = np.array([reward(a, g) for _, a, g in answers])
    n = len(answers)
    se = (lambda x: float(x.std(ddof=1) / np.sqrt(n))) if n > 1 else (lambda x: None)
    out = {f"gold_accuracy{suffix}": metric(100 * correct.mean(), se(100 * correct), n),
           f"gold_reward{suffix}": metric(rewards.mean(), se(rewards), n)}
    by_family: dict[str, list[float]] = defaultdict(list)
    for (family, _, _), ok in zip(answers, correct):
        by_family[family].append(ok)
    for family, oks in sorted(by_family.items()):
        out[f"gold_accuracy{suffix}_{family}"] = metric(100 * float(np.mean(oks)), None, len(oks))
    return out


def trivial_baseline_accuracy(items: Iterable[dict], turn: int = 0) -> float:
    """Accuracy (%) of the best constant answer per family: what a model that ignores the question can reach."""
    by_family: dict[str, list[str]] = defaultdict(list)
    items = list(items)
    for item in items:
        by_family[item["family"]].append(item["golds"][turn])
    best = sum(Counter(golds).most_common(1)[0][1] for golds in by_family.values())
    return 100 * best / max(1, len(items))


def require_gold(gold: Mapping[str, dict], key: str, where: str) -> dict:
    """The gold item of ``key`` (an instruction), or an InputError naming the file."""
    if key not in gold:
        raise InputError(f"{where}: no gold item for {key[:80]!r}")
    return gold[key]


def parse_data_args(pairs: Iterable[str]) -> dict[str, Path]:
    """``kind=path`` command-line pairs -> {kind: Path}."""
    data = {}
    for pair in pairs or ():
        kind, sep, path = pair.partition("=")
        if not sep or not kind or not path:
            raise InputError(f"--data {pair!r}: expected KIND=PATH")
        data[kind] = Path(path)
    return data


def need(data: Mapping[str, Path], kind: str, suite: str) -> Path:
    """The data file of ``kind`` a suite needs, or an InputError naming what is missing."""
    if kind not in data:
        raise InputError(f"suite {suite}: no --data {kind}=PATH given (got {sorted(data)})")
    return data[kind]
