"""Score stage: one JSON per (model, suite) computed from the suite's judgment file (chat suites) or the harness'
results (academic), and, in the micro world, from the generations against the gold answers.

    python -m evals.score --suite alpaca_eval --model dpo --judgments J --generations G --items I \\
        --data alpaca_eval_baseline=B --settings-json '{...}' --world-json W --out results/micro/scores/dpo/alpaca_eval.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from evals.registry import get_suite
from evals.suites import GOLD, parse_data_args
from pipeline.cli import entry_point
from pipeline.io import InputError, write_json
from pipeline.logs import get_logger

log = get_logger("evals.score")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--judgments", type=Path, help="the judgment file (judged suites)")
    parser.add_argument("--generations", type=Path, required=True)
    parser.add_argument("--data", nargs="*", default=[], metavar="KIND=PATH")
    parser.add_argument("--items", type=Path, help="the micro world's gold items (eval_items.jsonl)")
    parser.add_argument("--settings-json", default="{}", help="the suite's block of the config's `evals`")
    parser.add_argument("--world-json", default="null")
    parser.add_argument("--keep", nargs="*", default=[], metavar="SRC=DST",
                        help="files copied beside the score file (e.g. lm-eval's own results JSON)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    suite = get_suite(args.suite)
    if suite.is_judged and args.judgments is None:
        raise InputError(f"--suite {args.suite}: give --judgments")
    for path in [args.judgments, args.generations]:
        if path is not None and not path.is_file():
            raise InputError(f"{path}: file not found")
    data = parse_data_args(args.data)
    if args.items is not None:
        data[GOLD] = args.items
    score = suite.score(args.model, args.generations, args.judgments, data, json.loads(args.settings_json),
                        json.loads(args.world_json))
    for pair in args.keep:
        src, _, dst = pair.partition("=")
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    write_json(args.out, score, schema="score")
    log.info("%s/%s: %s", args.suite, args.model,
             ", ".join(f"{k}={v['value']:.3g}" for k, v in score["metrics"].items() if "_turn_" not in k
                       and not k.startswith("gold_accuracy_")))


if __name__ == "__main__":
    entry_point(main)
