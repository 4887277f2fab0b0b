"""How the judge's verbosity bias b_judge moves AlpacaEval's raw win rate with answer length, and how much of that the
length-controlled (LC) win rate removes: the micro world's check of the LC metric itself.

For each b_judge, the existing AlpacaEval generations of a finished study are re-judged by the oracle judge (the
config's oracle block with only ``verbosity_bias`` changed; same seed, so the same coins across b_judge) and scored
with the study's LC GLM. Reported per b_judge, across the study's models:

- ``WR slope`` / ``LC slope``: the OLS slope of the raw win rate / LC win rate (percentage points) on the model's
  mean answer length (per 10 characters), one point per model;
- ``excess WR slope`` / ``excess LC slope``: those slopes minus their value at b_judge = 0 (the part of the slope
  the judge's bias adds; at b_judge = 0 the slope is the world's own length-quality relation);
- ``LC removes``: 1 - excess LC slope / excess WR slope;
- ``GLM length effect``: minus the mean over models of the LC GLM's coefficient on tanh(std_delta_len) (upstream's
  delta is baseline minus model, so minus makes "longer model answers are preferred" positive): the per-pair length
  effect the GLM attributes to the judge, which should grow with b_judge;
- ``WR shift`` / ``LC shift``: the mean over models of |score(b_judge) - score(b_judge = 0)| (percentage points):
  how far the judge's bias alone moves each model's number (the same answers, re-judged);
- Kendall tau of the model ranking by WR and by LC against the ranking by gold reward.

    python benchmarks/judge_bias_sweep.py --config config/config.yaml --b-judge 0 0.5 1 2 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
LENGTH_UNIT = 10  # characters per slope unit
MIN_EXCESS = 0.1  # percentage points per LENGTH_UNIT: smaller added raw slopes leave "LC removes" undefined


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """OLS slope of y on x (nan with fewer than two distinct x)."""
    if len(np.unique(x)) < 2:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def sweep(config: dict, results: Path, b_values: list[float], judge_name: str) -> pd.DataFrame:
    from scipy.stats import kendalltau

    from evals.protocols import alpaca_eval_protocol as ae
    from evals.judge import make_judge
    from evals.registry import get_suite
    from pipeline.config import models as config_models
    from pipeline.io import read_json

    suite = get_suite("alpaca_eval")
    settings = config["evals"]["alpaca_eval"]
    data = {"alpaca_eval_baseline": results / "data" / "alpaca_eval_baseline.json",
            "eval_items": results / "data" / "eval_items.jsonl"}
    models = config_models(config)
    gold = {m: read_json(results / "scores" / m / "alpaca_eval.json")["metrics"]["gold_reward"]["value"] for m in models}
    rows = []
    for b in b_values:
        block = {**config["judges"][judge_name], "verbosity_bias": b}
        judge = make_judge(judge_name, block, cache_path=Path("/dev/null"), world=config["world"])
        per_model = []
        for model in models:
            generations = results / "generations" / model / suite.generation_file
            annotations = pd.DataFrame(suite.judge(judge, model, generations, data, settings))
            lc = ae.length_controlled_win_rate(annotations, glm_name=settings.get("lc_glm", ae.DEFAULT_GLM),
                                               n_splits=settings.get("lc_cv_splits", ae.GLM_N_SPLITS))
            per_model.append({"model": model, "wr": lc["win_rate"], "lc": lc["length_controlled_winrate"],
                              "length": annotations["output_2"].str.len().mean(),
                              "glm_length_effect": -lc["glm_weights"][ae.LENGTH_TERM], "gold": gold[model]})
        frame = pd.DataFrame(per_model)
        length = frame["length"].to_numpy() / LENGTH_UNIT
        rows.append({
            "b_judge": b,
            "WR slope": slope(length, frame["wr"].to_numpy()),
            "LC slope": slope(length, frame["lc"].to_numpy()),
            "GLM length effect": frame["glm_length_effect"].mean(),
            "tau(WR, gold)": kendalltau(frame["wr"], frame["gold"]).statistic,
            "tau(LC, gold)": kendalltau(frame["lc"], frame["gold"]).statistic,
            "models": {r["model"]: {k: float(r[k]) for k in ("wr", "lc", "length")} for r in per_model},
        })
    table = pd.DataFrame(rows)
    base = table.loc[table["b_judge"] == 0] if (table["b_judge"] == 0).any() else table.iloc[[0]]
    base_models = base["models"].iloc[0]
    for name, key in (("WR shift", "wr"), ("LC shift", "lc")):
        table[name] = [float(np.mean([abs(v[key] - base_models[m][key]) for m, v in r.items()])) for r in table["models"]]
    table["excess WR slope"] = table["WR slope"] - float(base["WR slope"].iloc[0])
    table["excess LC slope"] = table["LC slope"] - float(base["LC slope"].iloc[0])
    # Undefined where the bias added (almost) no raw slope: there is nothing to remove.
    added = table["excess WR slope"].where(table["excess WR slope"].abs() > MIN_EXCESS)
    table["LC removes"] = 1 - table["excess LC slope"] / added
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/config.yaml", help="the finished study's config")
    parser.add_argument("--b-judge", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--judge", default=None, help="the oracle judge's key in `judges` (default: AlpacaEval's)")
    parser.add_argument("--out", type=Path, help="markdown + JSON output (default results/<study>/tables/)")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / args.config).read_text())
    results = ROOT / "results" / config["study"]
    judge_name = args.judge or config["evals"]["alpaca_eval"]["judge"]
    if config["judges"][judge_name]["kind"] != "oracle":
        raise SystemExit(f"judge {judge_name!r} is not the micro world's oracle")
    table = sweep(config, results, sorted(args.b_judge), judge_name)
    shown = table.drop(columns=["models"])
    markdown = (f"b_judge sweep on {config['study']} ({len(table['models'][0])} models; slopes in percentage points "
                f"per {LENGTH_UNIT} characters of mean answer length, across models)\n\n"
                + shown.to_markdown(index=False, floatfmt=".3f") + "\n")
    out = args.out or results / "tables" / "judge_bias_sweep"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(markdown)
    out.with_suffix(".json").write_text(json.dumps(table.to_dict("records"), indent=2) + "\n")
    print(markdown)
    per_model = pd.DataFrame({(f"b={r['b_judge']:g}", k): {m: v[k] for m, v in r["models"].items()}
                              for r in table.to_dict("records") for k in ("wr", "lc")})
    print(per_model.round(1).to_string())


if __name__ == "__main__":
    main()
