"""The directions issue 11 asks the micro world's two label regimes to show, checked on a finished study's files
(tables/per_seed.csv and tables/length_analysis.json) and printed with their numbers. A measurement, not a test:
tests/test_dag.py checks the directions that are robust at smoke size on the smoke study.

Sound labels (b_ann small): offline DPO and iterative DPO above SFT on gold reward by more than 2 standard errors
over seeds, and iterative DPO at least as good as offline DPO.
Biased labels (the default): the reward model's score tracks length (Figure 5), iterative DPO's samples grow longer
over the rounds, the length-penalised variants answer shorter than iterative DPO, and the raw win rate rewards length
where LC and gold reward do not.

    python benchmarks/regime_directions.py results/micro results/sound_labels
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import pandas as pd


def gold_gain(per_seed: pd.DataFrame, variant: str, over: str = "sft") -> dict:
    """Per-seed gold-reward gains of ``variant`` over ``over`` (the shared SFT row, or another variant's same seed):
    their mean and standard error over seeds (None below 2 seeds)."""
    gold = per_seed[(per_seed["metric"] == "gold_reward")]
    mine = gold[gold["variant"] == variant].set_index("seed")["value"]
    if mine.empty:
        raise SystemExit(f"per_seed.csv: no gold_reward rows of variant {variant!r}")
    theirs = gold[gold["variant"] == over]
    if over == "sft":
        gains = mine - float(theirs["value"].iloc[0])
    else:
        gains = (mine - theirs.set_index("seed")["value"]).dropna()
    n = len(gains)
    se = statistics.stdev(gains) / math.sqrt(n) if n >= 2 else None
    return {"mean": float(gains.mean()), "se": se, "n_seeds": n, "per_seed": [round(float(g), 4) for g in gains]}


def beyond_two_se(gain: dict) -> bool | None:
    return None if gain["se"] is None else gain["mean"] - 2 * gain["se"] > 0


def sound_directions(study: Path) -> list[tuple[str, bool | None, str]]:
    per_seed = pd.read_csv(study / "tables" / "per_seed.csv")
    rows = []
    for variant in ("dpo", "iterative_dpo"):
        gain = gold_gain(per_seed, variant)
        rows.append((f"{variant} beats SFT on gold reward by > 2 SE over seeds", beyond_two_se(gain),
                     f"gain {gain['mean']:+.3f} ± {gain['se'] if gain['se'] is None else round(gain['se'], 3)} "
                     f"(SE over {gain['n_seeds']} seeds; per seed {gain['per_seed']})"))
    gain = gold_gain(per_seed, "iterative_dpo", over="dpo")
    rows.append(("iterative DPO at least as good as offline DPO (gold reward)", gain["mean"] >= 0,
                 f"iterative − offline {gain['mean']:+.3f} (per seed {gain['per_seed']})"))
    return rows


def biased_directions(study: Path) -> list[tuple[str, bool | None, str]]:
    analysis = json.loads((study / "tables" / "length_analysis.json").read_text())
    rm = analysis["reward_model"]
    rows = [("reward model's score tracks length (Figure 5)",
             rm["pearson_reward_length"] > max(0.3, rm["pearson_reward_correct"]),
             f"r(reward, length) {rm['pearson_reward_length']:.2f}, r(reward, correct) "
             f"{rm['pearson_reward_correct']:.2f} over {rm['n']} SFT samples")]
    rounds = pd.DataFrame(analysis["iterations"])
    plain = rounds[rounds["length_penalty"] == 0].groupby("iteration")["mean_length"].mean()
    rows.append(("iterative DPO's samples grow longer over the rounds", bool(plain.iloc[-1] > plain.iloc[0]),
                 " → ".join(f"{v:.1f}" for v in plain) + " chars (round means over seeds)"))
    variants = pd.DataFrame(analysis["variants"]).set_index("model")
    concise = [m for m in variants.index if m.startswith("iterative_dpo_concise")]
    lengths = ", ".join(f"{m} {variants.loc[m, 'mean_length']:.1f}" for m in concise)
    rows.append(("the length-penalised variants answer shorter than iterative DPO",
                 all(variants.loc[m, "mean_length"] < variants.loc["iterative_dpo", "mean_length"] for m in concise),
                 f"iterative_dpo {variants.loc['iterative_dpo', 'mean_length']:.1f}; {lengths} chars"))
    across = analysis["across_models"]
    gold_r = float(pd.Series(variants["gold_reward"], dtype=float).corr(pd.Series(variants["mean_length"], dtype=float)))
    rows.append(("raw win rate rewards length, LC and gold reward do not",
                 across["pearson_win_rate_length"] > 0 and across["pearson_lc_win_rate_length"] <
                 across["pearson_win_rate_length"] and gold_r <= 0,
                 f"r(WR, length) {across['pearson_win_rate_length']:.2f}, r(LC, length) "
                 f"{across['pearson_lc_win_rate_length']:.2f}, r(gold reward, length) {gold_r:.2f} over "
                 f"{across['n_models']} models"))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("biased", type=Path, help="the default (biased-label) study's folder, e.g. results/micro")
    parser.add_argument("sound", type=Path, nargs="?", help="the sound-label study's folder, e.g. results/sound_labels")
    args = parser.parse_args(argv)
    for title, study, check in (("biased labels", args.biased, biased_directions),
                                ("sound labels", args.sound, sound_directions)):
        if study is None:
            continue
        print(f"\n## {title}: {study}\n\n| direction | holds | numbers |\n|---|---|---|")
        for direction, holds, numbers in check(study):
            verdict = {True: "yes", False: "NO", None: "not checkable (< 2 seeds)"}[holds]
            print(f"| {direction} | {verdict} | {numbers} |")


if __name__ == "__main__":
    main()
