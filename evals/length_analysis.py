"""Length-bias analysis, from files on disk: the RLHF Workflow report's Table 6 (length-penalty ablation), the
reward model's length correlation (the report's Figure 5 analysis), answer length across iterative DPO's
iterations, how raw and length-controlled win rates move with length across models, (micro world) how well
each ranking agrees with the gold reward, and (micro world) the over-optimisation curve: the reward model's score
against the gold reward for best-of-n over n and for iterative DPO / RAFT over rounds (PPO: reward-model score per
step). Writes ``table6.{md,csv}``, ``length_analysis.{md,json}``, ``overoptimisation.csv`` and plots.

Models are ``sft`` and ``<variant>-s<seed>``: Table 6, the across-model analysis and the plots use each variant's mean
over its seeds (Table 6 with the 95 % CI of evals/aggregate.py ``seed_interval``); the per-iteration lengths and
overoptimisation.csv keep every seed's rows beside the means.

    python -m evals.length_analysis --results results/micro --models sft dpo ... --out-dir results/micro/tables
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from evals.aggregate import (FEW_SEEDS, HIGH, LOW, MARK, SEEDS, combine, degenerate, judge_line, metric_se,
                             to_html, to_markdown, with_notes)
from pipeline.config import SHARED_MODEL, split_seeded
from pipeline.cli import entry_point
from pipeline.io import InputError, read_json, read_jsonl, write_json, write_text
from pipeline.logs import get_logger
from pipeline.provenance import read_provenance

log = get_logger("evals.length_analysis")


SE_SUFFIX = "_se"   # model_summary's column of a metric's own standard error (metric_se), beside its value


def model_summary(results: Path, model: str) -> dict:
    """One model's numbers for the analysis, read from its score files and provenance: each metric's value and
    (``<key>_se``) its own standard error."""
    alpaca = read_json(results / "scores" / model / "alpaca_eval.json", schema="score")["metrics"]
    variant, seed = split_seeded(model)
    row = {"model": model, "variant": variant, "seed": seed,
           "module": read_provenance(results / "models" / model).get("module", model),
           "length_penalty": read_provenance(results / "models" / model)["config"].get("length_penalty"),
           "lc_degenerate": degenerate(alpaca.get("lc_win_rate"))}

    def put(key, metric):
        row[key] = None if metric is None else metric["value"]
        row[key + SE_SUFFIX] = metric_se(metric)

    for key in ("mean_length", "win_rate", "lc_win_rate", "gold_reward"):
        put(key, alpaca.get(key))
    mt_bench = results / "scores" / model / "mt_bench.json"
    if mt_bench.is_file():
        put("mt_bench", read_json(mt_bench, schema="score")["metrics"]["overall"])
    board = results / "scores" / "leaderboard" / "arena_hard.json"
    if board.is_file():
        put("arena_hard", read_json(board, schema="leaderboard")["models"].get(model, {}).get("score"))
    academic = results / "scores" / model / "academic.json"
    if academic.is_file():
        for task, metric in read_json(academic, schema="score")["metrics"].items():
            put(task, metric)
    return row


def variant_summary(models: pd.DataFrame) -> pd.DataFrame:
    """One row per variant (in ``models``' order): each metric the mean over its seeds with its 95 % CI
    (``<key> CI low``/``<key> CI high``: evals/aggregate.py ``combine``, as every table cell), the seeds'
    degenerate-LC reasons, the number of seeds, and the ‡ flag of a method variant measured with one seed."""
    metrics = [c[:-len(SE_SUFFIX)] for c in models.columns if c.endswith(SE_SUFFIX)]
    rows = []
    for variant, group in models.groupby("variant", sort=False):
        row = {"model": variant, "module": group["module"].iloc[0], "length_penalty": group["length_penalty"].iloc[0],
               SEEDS: "shared" if variant == SHARED_MODEL else len(group)}
        seeds = [None if pd.isna(seed) else int(seed) for seed in group["seed"]]
        for key in metrics:
            cell = combine([None if pd.isna(value) else
                            {"column": key, "value": value, "se": None if pd.isna(se) else float(se),
                             "degenerate": reason if key == "lc_win_rate" and isinstance(reason, str) else None}
                            for value, se, reason in zip(group[key], group[key + SE_SUFFIX], group["lc_degenerate"])],
                           seeds)
            row[key] = None if cell is None else cell["value"]
            if cell is not None:
                row[key + LOW], row[key + HIGH] = cell["lower"], cell["upper"]
            if key == "lc_win_rate":
                row["lc_degenerate"] = None if cell is None else cell.get("degenerate")
        row[FEW_SEEDS] = variant != SHARED_MODEL and len(group) < 2
        rows.append(row)
    return pd.DataFrame(rows)


def table6(models: pd.DataFrame, published: list[dict] | None = None) -> pd.DataFrame:
    """Iterative models (and SFT for reference) with their length penalty: the shape of the report's Table 6. One row
    per ``models`` row (``variant_summary``'s: a variant's mean over seeds, with its CI columns where given).

    ``published``: the paper's Table 6 rows (``evals/published/<name>.yaml``), printed first as "(published)" rows;
    each one whose ``ours`` model is in the table gets a row of ours minus published beneath ours. Our length is
    in characters ("Len. (chars)"); the paper does not state its unit, so its "Len." is never differenced."""
    rows = models[(models["module"] == "iterative_dpo") | (models["model"] == "sft")].copy()
    rows["length_penalty"] = rows["length_penalty"].map(lambda v: "-" if v is None or pd.isna(v) else v)
    names = {"model": "Model", "length_penalty": "Len. Pen.", "lc_win_rate": "LC Alp.", "win_rate": "WR Alp.",
             "mt_bench": "MT-Bench", "arena_hard": "Arena-H.", "mean_length": "Len. (chars)",
             "gold_reward": "Gold reward", "lc_degenerate": "LC Alp." + MARK}
    if "lc_degenerate" in rows and rows["lc_degenerate"].isna().all():
        rows = rows.drop(columns="lc_degenerate")  # the mark column only where a cell is marked
    base = [c for c in names if c in rows] + [c for c in rows if (c.startswith("micro_") or c in ACADEMIC_TITLES)
                                               and not c.endswith((LOW, HIGH, SE_SUFFIX))]
    keep = [c + suffix for c in base for suffix in ("", LOW, HIGH) if c + suffix in rows]
    keep = keep[:1] + [c for c in (SEEDS,) if c in rows] + keep[1:] + [c for c in (FEW_SEEDS,) if c in rows]
    titles = {**names, **ACADEMIC_TITLES}
    ours = rows[keep].rename(columns={c + suffix: titles.get(c, c) + suffix for c in base for suffix in ("", LOW, HIGH)})
    if not published:
        return ours
    refs = pd.DataFrame([{k: v for k, v in ref.items() if k != "ours"} | {"Model": f"{ref['Model']} (published)"}
                         for ref in published])
    measured = ours.set_index("Model")
    diffs = []
    for ref in published:
        if ref.get("ours") not in measured.index:
            continue
        diff = {"Model": f"Δ {ref['ours']} − {ref['Model']}"}
        for column, value in ref.items():
            mine = measured.loc[ref["ours"]].get(column) if column in measured.columns else None
            if column not in ("Model", "ours", "Len. Pen.") and isinstance(value, (int, float)) and \
                    isinstance(mine, (int, float)) and not pd.isna(mine):
                diff[column] = float(mine) - float(value)
        diffs.append(diff)
    return pd.concat([refs, ours, pd.DataFrame(diffs)], ignore_index=True)


def table6_caption(results: Path, models: list[str], names: list[str]) -> str:
    """Which judge made Table 6's LC AlpacaEval and Arena-Hard numbers, flagged as not comparable with the
    published rows when a named paper's judge was another (as every table caption of evals/aggregate.py)."""
    import yaml

    folder = Path(__file__).resolve().parent / "published"
    papers = {n: yaml.safe_load((folder / f"{n}.yaml").read_text(encoding="utf-8")) for n in names}
    lines = []
    for suite in ("alpaca_eval", "arena_hard"):
        paths = [results / "scores" / m / f"{suite}.json" for m in models]
        judges = sorted({j for p in paths if p.is_file() for j in read_json(p, schema="score").get("judges", [])})
        if judges:
            lines.append(f"- {judge_line(suite, judges, papers)}")
    return "\n".join(lines)


def published_table6(names: list[str]) -> list[dict]:
    """The Table 6 rows of the published papers a study names (``evals/published/<name>.yaml``)."""
    import yaml

    folder = Path(__file__).resolve().parent / "published"
    rows = []
    for name in names:
        path = folder / f"{name}.yaml"
        if not path.is_file():
            raise InputError(f"--published {name}: no {path}")
        rows += yaml.safe_load(path.read_text(encoding="utf-8")).get("tables", {}).get("table6", {}).get("rows", [])
    return rows


TABLE6_SEEDS = ("- Each method row: the mean over its seeds [95 % CI: t_{0.975,df} * sqrt(s^2/S + mean(se^2)), as in "
                "methods.md]; sft: the one shared checkpoint, its CI the suite's own. Per-seed values: "
                "length_analysis.json (models) and per_seed.csv.")
TABLE6_DIGITS = {"Len. Pen.": 3, "Gold reward": 3, "MT-Bench": 2}  # the rest with 1 decimal
ACADEMIC_TITLES = {"gsm8k": "GSM-8K", "mmlu": "MMLU", "humaneval": "HumanEval", "truthfulqa_mc2": "TruthfulQA",
                   "arc_challenge": "ARC", "mbpp": "MBPP"}


def iteration_lengths(results: Path, models: pd.DataFrame) -> pd.DataFrame:
    """Mean sampled length, chosen/rejected length and mean reward per iteration of each iterative model (one row per
    seed's model; ``seed_means`` averages them)."""
    rows = []
    for model in models.loc[models["module"] == "iterative_dpo", "model"]:
        for stats_path in sorted((results / "iterative" / model).glob("iter*/stats.json")):
            stats = read_json(stats_path)
            rows.append({"model": model, "variant": split_seeded(model)[0], "seed": split_seeded(model)[1],
                         "iteration": stats["iteration"],
                         "length_penalty": stats["length_penalty"],
                         "mean_length": stats["mean_length_chars"], "chosen_length": stats["mean_chosen_length_chars"],
                         "rejected_length": stats["mean_rejected_length_chars"], "mean_reward": stats["mean_reward"]})
    return pd.DataFrame(rows)


def reward_length_correlation(results: Path, models: pd.DataFrame) -> dict | None:
    """Pearson correlation of reward-model scores with length (and with gold correctness in the micro world) over
    the SFT policy's samples: the first iteration of the first iterative model without a length penalty."""
    from world.tasks import is_correct

    candidates = models[(models["module"] == "iterative_dpo") & (models["length_penalty"].fillna(0) == 0)]["model"]
    for model in candidates:
        samples_path = results / "iterative" / model / "iter1" / "samples.jsonl"
        if not samples_path.is_file():
            continue
        gold = {}
        prompts_path = results / "data" / "online_prompts.jsonl"
        if prompts_path.is_file():
            gold = {row["item_id"]: row.get("gold") for row in read_jsonl(prompts_path, schema="prompt_row")
                    if "item_id" in row}  # micro world only: hub prompts carry no gold item
        lengths, rewards, correct = [], [], []
        for row in read_jsonl(samples_path):
            for completion, reward in zip(row["completions"], row["rewards"]):
                lengths.append(len(completion))
                rewards.append(reward)
                if gold.get(row.get("item_id")) is not None:
                    correct.append(float(is_correct(completion, gold[row["item_id"]])))
        out = {"samples": str(samples_path), "n": len(rewards),
               "pearson_reward_length": float(np.corrcoef(rewards, lengths)[0, 1])}
        if len(correct) == len(rewards) and np.std(correct) > 0:
            out["pearson_reward_correct"] = float(np.corrcoef(rewards, correct)[0, 1])
        return out
    return None


ITERATIVE_MODULES = ("iterative_dpo", "raft")


def overoptimisation(results: Path, models: pd.DataFrame, gold_reward: dict | None) -> pd.DataFrame:
    """The reward model's score against the gold reward (Gao et al. 2023's over-optimisation curve), micro world only,
    one row per point with the files it comes from:
      - best-of-n over n: the reward model's mean score of the chosen answers of the AlpacaEval conversations
        (generations/<model>/best_of_n.jsonl, matched to generations/<model>/alpaca_eval.json) and the gold reward
        of the same answers (scores/<model>/alpaca_eval.json);
      - iterative DPO / RAFT over rounds: round t's samples (drawn from the policy after t - 1 rounds;
        iterative/<model>/iter<t>/samples.jsonl), their mean reward-model score and mean gold reward (the online
        prompts' gold answers, data/online_prompts.jsonl);
      - PPO over rollout steps: the reward model's mean score per step from its training log (provenance.json
        metrics.train_log); the log records no gold reward, so gold is empty there."""
    if gold_reward is None:
        return pd.DataFrame()
    from world.truth import GoldReward

    gold = GoldReward(**gold_reward)
    prompts_path = results / "data" / "online_prompts.jsonl"
    answers = ({r["item_id"]: r.get("gold") for r in read_jsonl(prompts_path, schema="prompt_row")}
               if prompts_path.is_file() else {})
    rows = []
    for model, module in zip(models["model"], models["module"]):
        if module == "best_of_n":
            rows += _best_of_n_point(results, model)
        elif module in ITERATIVE_MODULES:
            for path in sorted((results / "iterative" / model).glob("iter*/samples.jsonl"),
                               key=lambda p: int(p.parent.name.removeprefix("iter"))):
                samples = read_jsonl(path)
                pairs = [(c, answers.get(r.get("item_id"))) for r in samples for c in r["completions"]]
                golds = [gold(c, g) for c, g in pairs if g is not None]
                rewards = [x for r in samples for x in r["rewards"]]
                rows.append({"model": model, "module": module, "axis": "round",
                             "step": int(path.parent.name.removeprefix("iter")) - 1,
                             "rm_score": float(np.mean(rewards)),
                             "gold_reward": float(np.mean(golds)) if len(golds) == len(pairs) else None,
                             "n_answers": len(rewards), "source": f"{path.relative_to(results)} + {prompts_path.name}"})
        elif module == "ppo":
            log_rows = read_provenance(results / "models" / model).get("metrics", {}).get("train_log", [])
            for step, entry in enumerate(log_rows, start=1):
                if "reward" in entry:
                    rows.append({"model": model, "module": module, "axis": "rollout step", "step": step,
                                 "rm_score": float(entry["reward"]), "gold_reward": None, "n_answers": None,
                                 "source": f"models/{model}/provenance.json metrics.train_log[{step - 1}]"})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame.insert(1, "variant", [split_seeded(m)[0] for m in frame["model"]])
        frame.insert(2, "seed", [split_seeded(m)[1] for m in frame["model"]])
    return frame


def seed_means(frame: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """The mean over seeds of ``values`` per ``keys`` (a variant's curve from its seeds' points), with the number of
    seeds averaged (``n_seeds``); a value no seed has stays empty."""
    if frame.empty:
        return frame
    grouped = frame.groupby(keys, sort=False, dropna=False)
    means = grouped[values].mean().reset_index()
    return means.assign(n_seeds=grouped.size().to_numpy())


def with_seed_means(points: pd.DataFrame) -> pd.DataFrame:
    """overoptimisation.csv's rows: every seed's points, then each variant's mean over its seeds (``seed`` "mean",
    ``model`` the variant), the points the plot draws."""
    if points.empty:
        return points
    means = seed_means(points, ["variant", "module", "axis", "step"], ["rm_score", "gold_reward"])
    means = means.assign(model=means["variant"], seed="mean", source="mean over the seeds' rows")
    return pd.concat([points.astype({"seed": object}), means], ignore_index=True)


def _best_of_n_point(results: Path, model: str) -> list[dict]:
    from pipeline.provenance import INFERENCE_TRACE

    trace_path = results / "generations" / model / INFERENCE_TRACE
    score_path = results / "scores" / model / "alpaca_eval.json"
    if not trace_path.is_file() or not score_path.is_file():
        return []
    outputs = {(g["instruction"], g["output"]) for g in read_json(results / "generations" / model / "alpaca_eval.json")}
    chosen = [t["rewards"][t["chosen"]] for t in read_jsonl(trace_path)
              if len(t["conversation"]) == 1 and (t["conversation"][0]["content"], t["candidates"][t["chosen"]]) in outputs]
    gold = read_json(score_path, schema="score")["metrics"].get("gold_reward", {}).get("value")
    if not chosen:
        return []
    return [{"model": model, "module": "best_of_n", "axis": "n",
             "step": int(read_provenance(results / "models" / model)["inference_rule"]["n"]),
             "rm_score": float(np.mean(chosen)), "gold_reward": gold, "n_answers": len(chosen),
             "source": f"generations/{model}/{INFERENCE_TRACE} + generations/{model}/alpaca_eval.json + "
                       f"scores/{model}/alpaca_eval.json"}]


def kendall_tau(a: pd.Series, b: pd.Series) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def _finite(value: float) -> float | None:
    """None where a correlation is undefined (a constant column, e.g. every LC exactly 50 from degenerate fits)."""
    return float(value) if np.isfinite(value) else None


def across_models(models: pd.DataFrame) -> dict:
    """How raw and LC win rates move with mean length across models, and (micro world) agreement with gold."""
    out = {"n_models": len(models)}
    if len(models) < 3:
        return out
    for metric in ("win_rate", "lc_win_rate"):
        if models[metric].notna().all():
            out[f"pearson_{metric}_length"] = _finite(np.corrcoef(models[metric], models["mean_length"])[0, 1])
            out[f"slope_{metric}_per_10_chars"] = float(np.polyfit(models["mean_length"], models[metric], 1)[0] * 10)
            if models["gold_reward"].notna().all():
                out[f"kendall_tau_{metric}_vs_gold_reward"] = _finite(kendall_tau(models[metric], models["gold_reward"]))
    return out


def _save(fig, ax, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot(models: pd.DataFrame, iterations: pd.DataFrame, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for metric, label, marker in (("win_rate", "raw win rate", "o"), ("lc_win_rate", "length-controlled", "s")):
        ax.scatter(models["mean_length"], models[metric], label=label, marker=marker)
    for _, row in models.iterrows():
        ax.annotate(row["model"], (row["mean_length"], row["win_rate"]), fontsize=7, alpha=0.7)
    written.append(_save(fig, ax, "mean answer length (characters)", "AlpacaEval win rate vs baseline (%)",
                         "Win rate and length across models", out_dir / "winrate_vs_length.png"))
    if not iterations.empty:
        fig, ax = plt.subplots(figsize=(6, 4))
        means = seed_means(iterations, ["variant", "iteration", "length_penalty"], ["mean_length"])
        for variant, group in means.groupby("variant", sort=False):
            ax.plot(group["iteration"], group["mean_length"], marker="o",
                    label=f"{variant} (λ={group['length_penalty'].iloc[0]}, {group['n_seeds'].iloc[0]} seeds)")
        written.append(_save(fig, ax, "iteration", "mean sampled length (characters)",
                             "Iterative DPO: answer length per iteration (mean over seeds)", out_dir / "iterative_length.png"))
    return written


def plot_overoptimisation(points: pd.DataFrame, out_dir: Path) -> Path | None:
    """Gold reward against the reward model's score: one line per model over n (best-of-n, all its models as one
    line) or over rounds; the points are the rows of overoptimisation.csv that have both numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not points.empty:
        points = points[points["seed"] == "mean"]    # each variant's mean over its seeds (with_seed_means)
    both = points.dropna(subset=["rm_score", "gold_reward"]) if not points.empty else points
    if both.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    lines = both.assign(line=both["model"].where(both["module"] != "best_of_n", "best-of-n"))
    for line, group in lines.groupby("line"):
        group = group.sort_values("step")
        ax.plot(group["rm_score"], group["gold_reward"], marker="o", label=line)
        for _, row in group.iterrows():
            ax.annotate(f"{row['axis'][0]}={row['step']}", (row["rm_score"], row["gold_reward"]), fontsize=7)
    return _save(fig, ax, "reward model score (mean)", "gold reward (mean)",
                 "Over-optimisation: gold vs reward-model score", out_dir / "overoptimisation.png")


def report(summary: dict, t6: pd.DataFrame, iterations: pd.DataFrame, points: pd.DataFrame | None = None) -> str:
    lines = ["# Length-bias analysis", "",
             "## Table 6: length penalty (r - λ·len) ablation, shape of the RLHF Workflow report's Table 6", "",
             to_markdown(t6.to_dict(orient="records"), TABLE6_DIGITS), ""]
    if not iterations.empty:
        lines += ["## Iterative DPO: length per iteration (sampled answers; chosen vs rejected of the pairs)", "",
                  iterations.to_markdown(index=False, floatfmt=".3g"), ""]
    rm = summary.get("reward_model")
    if rm:
        lines += ["## Reward model vs length (the report's Figure 5 analysis)", "",
                  f"Over {rm['n']} samples of the SFT policy ({rm['samples']}): Pearson r(reward, length) = "
                  f"{rm['pearson_reward_length']:.3f}"
                  + (f"; r(reward, gold correctness) = {rm['pearson_reward_correct']:.3f}" if "pearson_reward_correct" in rm else "")
                  + ".", ""]
    if points is not None and not points.empty:
        lines += ["## Over-optimisation: reward-model score vs gold reward (Gao et al. 2023)", "",
                  "Best-of-n over n (AlpacaEval answers), iterative methods over rounds (round t's samples come from "
                  "the policy after t − 1 rounds), PPO over rollout steps (no gold in its log). Every seed's row names "
                  "its files (under the study folder); rows with seed \"mean\" average a variant's seeds and are what "
                  "the plot, overoptimisation.png, draws.", "",
                  points.to_markdown(index=False, floatfmt=".3g"), ""]
    am = summary["across_models"]
    if "pearson_win_rate_length" in am:
        lines += ["## Win rate vs length across models", "",
                  "| metric | Pearson r with mean length | slope (points per 10 chars) | Kendall τ vs gold reward |",
                  "|---|---|---|---|"]
        for metric, label in (("win_rate", "raw win rate"), ("lc_win_rate", "LC win rate")):
            if f"pearson_{metric}_length" in am:
                tau = am.get(f"kendall_tau_{metric}_vs_gold_reward")
                r = am[f"pearson_{metric}_length"]
                lines.append(f"| {label} | {'undefined' if r is None else f'{r:.3f}'} | {am[f'slope_{metric}_per_10_chars']:.2f} | "
                             f"{'' if tau is None else f'{tau:.3f}'} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="results/<study>")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--published", nargs="*", default=[], help="papers whose Table 6 rows join ours")
    parser.add_argument("--gold-reward-json", help="micro world: the world's gold_reward block (over-optimisation)")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        raise InputError(f"{args.results}: no such results folder")
    models = pd.DataFrame([model_summary(args.results, m) for m in args.models])   # one row per seed's model
    variants = variant_summary(models)                                              # one row per variant
    iterations = iteration_lengths(args.results, models)
    t6 = table6(variants, published_table6(args.published))
    points = with_seed_means(overoptimisation(args.results, models,
                                              json.loads(args.gold_reward_json) if args.gold_reward_json else None))
    # a column mixing None and numbers (length_penalty: only iterative models have one) reads back as NaN: null in JSON
    summary = {"models": json.loads(models.to_json(orient="records")),
               "variants": json.loads(variants.to_json(orient="records")),
               "iterations": json.loads(iterations.to_json(orient="records")),
               "overoptimisation": json.loads(points.to_json(orient="records")),
               "reward_model": reward_length_correlation(args.results, models),
               "across_models": across_models(variants)}
    write_text(args.out_dir / "table6.csv", t6.to_csv(index=False))
    caption = "\n".join(part for part in (table6_caption(args.results, args.models, args.published), TABLE6_SEEDS)
                         if part)
    records = t6.to_dict(orient="records")
    caption = with_notes(caption, records)  # a marked (†) LC cell: why it is not a measurement
    write_text(args.out_dir / "table6.md", to_markdown(records, TABLE6_DIGITS, caption))
    write_text(args.out_dir / "table6.html", to_html("Table 6: length-penalty ablation (one row per λ)", records,
                                                     TABLE6_DIGITS, caption))
    write_json(args.out_dir / "length_analysis.json", summary)
    analysis = report(summary, t6, iterations, points)
    write_text(args.out_dir / "length_analysis.md", analysis)
    write_text(args.out_dir / "length_analysis.html", "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
               f"<title>Length-bias analysis</title></head><body><pre>{html.escape(analysis)}</pre></body></html>\n")
    write_text(args.out_dir / "overoptimisation.csv", points.to_csv(index=False))
    for path in [*plot(variants, iterations, args.out_dir), plot_overoptimisation(points, args.out_dir)]:
        if path is None:
            continue
        log.info("wrote %s", path)
    log.info("wrote %s", args.out_dir / "length_analysis.md")


if __name__ == "__main__":
    entry_point(main)
