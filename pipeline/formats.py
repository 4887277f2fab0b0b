"""TRL's conversational data formats, shared by the micro world's data stage and the hub data stage."""

from __future__ import annotations


def user(content: str) -> list[dict]:
    return [{"role": "user", "content": content}]


def assistant(content: str) -> list[dict]:
    return [{"role": "assistant", "content": content}]


def kto_rows(pairs: list[dict]) -> list[dict]:
    """Unpaired labels from preference pairs: chosen is desirable, rejected undesirable (TRL's convention)."""
    rows = []
    for pair in pairs:
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": True})
        rows.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": False})
    return rows
