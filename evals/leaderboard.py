"""Cross-model step of a suite (e.g. Arena-Hard's style control, whose style coefficients are shared by all
models): reads every model's generations and judgments, writes ``scores/leaderboard/<suite>.json``.

    python -m evals.leaderboard --suite arena_hard --models sft dpo \\
        --generations results/micro/generations/{sft,dpo}/arena_hard.jsonl \\
        --judgments results/micro/judgments/{sft,dpo}/arena_hard.jsonl \\
        --data arena_hard_baseline=B --settings-json '{...}' --seed 0 --out results/micro/scores/leaderboard/arena_hard.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evals.registry import get_suite
from evals.suites import parse_data_args
from pipeline.cli import entry_point
from pipeline.io import InputError, write_json
from pipeline.logs import get_logger

log = get_logger("evals.leaderboard")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--generations", type=Path, nargs="+", required=True, help="one per model, in order")
    parser.add_argument("--judgments", type=Path, nargs="+", required=True, help="one per model, in order")
    parser.add_argument("--data", nargs="*", default=[], metavar="KIND=PATH")
    parser.add_argument("--settings-json", default="{}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not len(args.models) == len(args.generations) == len(args.judgments):
        raise InputError("--models, --generations and --judgments must list the same number of files")
    suite = get_suite(args.suite)
    if not suite.has_leaderboard:
        raise InputError(f"--suite {args.suite}: this suite has no cross-model step")
    board = suite.leaderboard(dict(zip(args.models, args.generations)), dict(zip(args.models, args.judgments)),
                              parse_data_args(args.data), json.loads(args.settings_json), args.seed)
    write_json(args.out, board, schema="leaderboard")
    log.info("%s leaderboard: %s", args.suite, ", ".join(
        f"{m}=" + "/".join(f"{v['value']:.1f}" for v in metrics.values()) for m, metrics in board["models"].items()))


if __name__ == "__main__":
    entry_point(main)
