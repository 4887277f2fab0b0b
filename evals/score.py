"""Scoring one (model, suite): one JSON computed from the suite's judgment file (chat suites) or the harness'
results (academic), and, in the micro world, from the generations against the gold answers. Called per suite by the
evaluation stage (evals/evaluate.py), after judging.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from evals.registry import Suite
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



def score_suite(suite: Suite, model: str, *, generations: Path, judgments: Path | None, data: Mapping[str, Path],
                settings: Mapping[str, Any], world: Mapping[str, Any] | None, out: Path) -> dict:
    """Compute and write the score file ``out`` of ``model`` on ``suite`` (its config block ``settings``); a judged
    suite past its unparsable-verdict share stops naming the judgment file. Returns the score written."""
    if suite.is_judged and judgments is None:
        raise InputError(f"suite {suite.name}: scoring needs its judgment file")
    for path in [judgments, generations]:
        if path is not None and not path.is_file():
            raise InputError(f"{path}: file not found")
    score = suite.score(model, generations, judgments, data, settings, world)
    if suite.is_judged:
        check_unparsable(score, suite.name, judgments, settings)
    score = finite_or_null(score)
    write_json(out, score, schema="score")
    return score


def summary(score: Mapping[str, Any]) -> str:
    """The headline metrics of a score for the log line (per-turn and per-family entries left out)."""
    return ", ".join(f"{k}={v['value']:.3g}" for k, v in score["metrics"].items()
                     if v["value"] is not None and "_turn_" not in k and not k.startswith("gold_accuracy_"))
