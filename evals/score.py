"""Score stage: one JSON per (model, suite) computed from the suite's judgment file (chat suites) or the harness'
results (academic), and, in the micro world, from the generations against the gold answers.

    python -m evals.score --suite alpaca_eval --model dpo --judgments J --generations G --items I \\
        --data alpaca_eval_baseline=B --settings-json '{...}' --world-json W --out results/micro/scores/dpo/alpaca_eval.json
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from typing import Any, Mapping

from evals.registry import get_suite
from evals.suites import GOLD, parse_data_args
from pipeline.cli import entry_point
from pipeline.io import InputError, write_json
from pipeline.logs import get_logger

log = get_logger("evals.score")

# Unparsable judge verdicts are kept in the judgment file and excluded from the metrics, as upstream does (AlpacaEval
# drops NaN preferences, FastChat drops score -1, Arena-Hard drops null scores); past this share of a file the
# judge, not the model, is what is measured, and the stage fails (config: evals.<suite>.max_unparsable_share).
DEFAULT_MAX_UNPARSABLE_SHARE = 0.2


def unparsable_share(metrics: Mapping[str, dict]) -> tuple[float, int, int]:
    """(share, unparsable, n) of the metric with the most unparsable verdicts: a suite reports them as a metric
    ``n_unparsable*`` or as an ``n_unparsable`` field of a metric."""
    worst = (0.0, 0, 0)
    for name, entry in metrics.items():
        if name.startswith("n_unparsable"):  # n counts every judgment
            count, n = entry["value"], entry.get("n") or 0
        elif entry.get("n_unparsable") is not None:  # n counts the parsed ones (AlpacaEval's n_total)
            count, n = entry["n_unparsable"], (entry.get("n") or 0) + entry["n_unparsable"]
        else:
            continue
        if n:
            worst = max(worst, (count / n, int(count), int(n)))
    return worst


def check_unparsable(score: dict, suite: str, judgments: Path, settings: Mapping[str, Any]) -> None:
    limit = settings.get("max_unparsable_share", DEFAULT_MAX_UNPARSABLE_SHARE)
    share, count, n = unparsable_share(score["metrics"])
    if share > limit:
        raise InputError(f"{judgments}: {count} of {n} judge verdicts unparsable ({share:.0%}), more than "
                         f"evals.{suite}.max_unparsable_share = {limit:g}; the judge's raw texts are in that file")
    if count:
        log.warning("%s: %d of %d judge verdicts unparsable: kept in the file, excluded from the metrics",
                    judgments, count, n)


def finite_or_null(obj: Any) -> Any:
    """NaN or infinite numbers (a mean over no parsable verdict, an LC fit's weights on one outcome) become null:
    JSON has no NaN."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [finite_or_null(value) for value in obj]
    return obj


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
    settings = json.loads(args.settings_json)
    score = suite.score(args.model, args.generations, args.judgments, data, settings, json.loads(args.world_json))
    if suite.is_judged:
        check_unparsable(score, args.suite, args.judgments, settings)
    score = finite_or_null(score)
    for pair in args.keep:
        src, _, dst = pair.partition("=")
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    write_json(args.out, score, schema="score")
    log.info("%s/%s: %s", args.suite, args.model,
             ", ".join(f"{k}={v['value']:.3g}" for k, v in score["metrics"].items() if v["value"] is not None
                       and "_turn_" not in k
                       and not k.startswith("gold_accuracy_")))


if __name__ == "__main__":
    entry_point(main)
