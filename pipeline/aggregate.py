"""Aggregate stage: comparison tables computed from score files and checkpoint provenance on disk.

    python -m pipeline.aggregate --scores results/micro/scores/*/*.json --models-dir results/micro/models \
        --out-dir results/micro/tables
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from pipeline.io import InputError, read_json, write_json, write_text
from pipeline.logs import get_logger
from pipeline.provenance import read_provenance
from pipeline.cli import entry_point

log = get_logger("pipeline.aggregate")

# (suite, metric) -> column title, in table order; a column appears when some score file has it.
METHOD_COLUMNS = [
    (("alpaca_eval", "gold_accuracy"), "Gold accuracy (%)"),
    (("alpaca_eval", "gold_reward"), "Gold reward"),
    (("alpaca_eval", "win_rate"), "AlpacaEval WR (%)"),
]


def load_scores(paths: list[Path]) -> dict[tuple[str, str], dict]:
    """(model, suite) -> score file contents."""
    scores = {}
    for path in paths:
        score = read_json(path, schema="score")
        scores[(score["model"], score["suite"])] = score
    return scores


def fmt(metric: dict | None, digits: int = 1) -> str:
    if metric is None:
        return ""
    value, stderr = metric["value"], metric.get("stderr")
    if stderr is None or (isinstance(stderr, float) and math.isnan(stderr)):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {stderr:.{digits}f}"


def method_rows(models: list[str], scores: dict, models_dir: Path) -> list[dict]:
    rows = []
    for model in models:
        provenance = read_provenance(models_dir / model)
        row = {"Model": model, "Method": provenance.get("module", provenance["stage"])}
        for (suite, name), title in METHOD_COLUMNS:
            score = scores.get((model, suite))
            if score is None:
                raise InputError(f"no {suite} score file for model {model!r}")
            metric = score["metrics"].get(name)
            row[title] = metric["value"] if metric else None
            row[f"{title} SE"] = metric["stderr"] if metric else None
        row["Mean length (chars)"] = scores[(model, "alpaca_eval")]["mean_length"]
        row["Train wall time (s)"] = provenance["wall_time_s"]
        row["Tokens seen"] = provenance["tokens_seen"]
        row["Checkpoint"] = provenance["checkpoint_hash"]
        row["Parent"] = provenance["parents"].get("policy", {}).get("checkpoint_hash", "")
        rows.append(row)
    return rows


def to_markdown(rows: list[dict]) -> str:
    """Values with their standard errors as `v ± se`; SE columns folded into their value column."""
    display = []
    for row in rows:
        shown = {}
        for key, value in row.items():
            if key.endswith(" SE"):
                continue
            se = row.get(f"{key} SE")
            if isinstance(value, float):
                digits = 3 if key == "Gold reward" else 1
                shown[key] = fmt({"value": value, "stderr": se}, digits)
            else:
                shown[key] = value
        display.append(shown)
    return pd.DataFrame(display).to_markdown(index=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scores", type=Path, nargs="+", required=True)
    parser.add_argument("--models", nargs="+", required=True, help="models in table order")
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = method_rows(args.models, load_scores(args.scores), args.models_dir)
    write_text(args.out_dir / "methods.csv", pd.DataFrame(rows).to_csv(index=False))
    markdown = to_markdown(rows)
    write_text(args.out_dir / "methods.md", markdown)
    write_json(args.out_dir / "methods.json", rows)
    log.info("wrote %s\n%s", args.out_dir / "methods.md", markdown)


if __name__ == "__main__":
    entry_point(main)
