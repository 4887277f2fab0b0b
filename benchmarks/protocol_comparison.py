"""What the protocol choices do to the numbers of a finished micro study, per model:

- AlpacaEval: the weighted win rate (upstream's weighted_alpaca_eval_gpt4_turbo, the judge's P(m) vs P(M)) against
  upstream's discrete win rate (the weighted preferences rounded) and the win rate of the judge's sampled letter
  alone (what a text-reading judge gives), all read from the score files;
- Arena-Hard: the study's Arena-Hard generations re-judged by the config's oracle under arena-hard-auto v0.1 and
  v2.0 (judge budget, second call, verdict parsing, null handling; the answers are the study's, so the answer
  budget does not differ), each scored by the Bradley-Terry win rate against the baseline.

    python benchmarks/protocol_comparison.py --config config/config.yaml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def compare(config: dict, results: Path, models: list[str]) -> pd.DataFrame:
    from evals.judge import make_judge
    from evals.protocols import arena_hard_protocol as ah
    from evals.registry import get_suite
    from pipeline.io import read_json

    arena = get_suite("arena_hard")
    settings = config["evals"]["arena_hard"]
    judge_name = settings["judge"]
    judge = make_judge(judge_name, config["judges"][judge_name], cache_path=Path("/dev/null"), world=config["world"])
    data = {kind: results / "data" / name for kind, name in
            {"arena_hard_questions": "arena_hard_questions.jsonl", "arena_hard_baseline": "arena_hard_baseline.jsonl",
             "eval_items": "eval_items.jsonl"}.items()}
    baseline = {r["model"] for r in pd.read_json(data["arena_hard_baseline"], lines=True).to_dict("records")}.pop()
    rows = []
    for model in models:
        alpaca = read_json(results / "scores" / model / "alpaca_eval.json", schema="score")["metrics"]
        row = {"model": model, "AE weighted WR": alpaca["win_rate"]["value"],
               "AE discrete WR": alpaca["discrete_win_rate"]["value"],
               "AE sampled-letter WR": alpaca.get("sampled_win_rate", {}).get("value")}
        generations = results / "generations" / model / arena.generation_file
        for version in ("v0.1", "v2.0"):
            judged = arena.judge(judge, model, generations, data, {**settings, "version": version})
            battles = ah.judgments_to_battles(judged, version=ah.get_version(version))
            table = ah.bradley_terry_scores(battles, baseline, num_rounds=settings.get("bootstrap_rounds", 100))
            row[f"AH {version}"] = float(table.loc[model, "score"])
            row[f"AH {version} second calls"] = sum(g.get("attempts", 1) > 1 for r in judged for g in r["games"])
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/config.yaml", help="the finished study's config")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / args.config).read_text())
    if config["judges"][config["evals"]["arena_hard"]["judge"]]["kind"] != "oracle":
        raise SystemExit("this comparison re-judges with the micro world's oracle")
    results = ROOT / "results" / config["study"]
    from pipeline.config import models as config_models

    table = compare(config, results, config_models(config))
    markdown = table.to_markdown(index=False, floatfmt=".1f") + "\n"
    out = results / "tables" / "protocol_comparison"
    out.with_suffix(".md").write_text(markdown)
    out.with_suffix(".json").write_text(json.dumps(table.to_dict("records"), indent=2) + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
