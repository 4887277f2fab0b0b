"""AlpacaEval 2: each instruction answered once, judged pairwise against a fixed baseline's output (upstream's
``weighted_alpaca_eval_gpt4_turbo`` prompt, order coin and parser: ``evals/protocols/alpaca_eval_protocol.py``), scored as the win
rate +- SE and the length-controlled win rate.

Files (upstream's formats): generations ``alpaca_eval.json`` = ``[{instruction, output, generator, dataset}]``;
judgments ``alpaca_eval.jsonl`` = upstream ``annotations.json`` rows + judge id, prompt hash, raw text, latency,
cache hit. Config block ``evals.alpaca_eval``: ``judge``, ``lc_glm``, ``lc_bootstrap``, ``generation``, ``published``.
``lc_glm: length_controlled_v1`` (the leaderboard's, on AlpacaEval's own 805 instructions only) reads upstream's
``df_gamed.csv`` from the data stage (kind ``alpaca_eval_gamed``): its instruction difficulty and gamed baselines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from evals.registry import AnswerRounds, ChatSuite, Column, generation_settings, register_suite
from evals.suites import GOLD, gold_metrics, items_of_suite, metric, need, read_items, require_gold, \
    trivial_baseline_accuracy
from pipeline.io import InputError, read_json
from pipeline.logs import get_logger

log = get_logger("evals.suites.alpaca_eval")

BASELINE = "alpaca_eval_baseline"
GAMED = "alpaca_eval_gamed"          # upstream's df_gamed.csv (hub tatsu-lab/alpaca_eval), for the v1/noreg GLMs
# Our instruction sets are not AlpacaEval's: upstream's instruction difficulty means nothing for them, so the
# default GLM is upstream's `length_controlled_minimal` (tanh(std_delta_len) + not_gamed_baseline - 1).
DEFAULT_LC_GLM = "length_controlled_minimal"
DEFAULT_LC_BOOTSTRAP = 50


@register_suite
class AlpacaEval(ChatSuite):
    name = "alpaca_eval"
    version = "3"
    generation_file = "alpaca_eval.json"
    generation_schema = "alpaca_eval_outputs"
    judgment_schema = "alpaca_eval_judgment"
    generation_data = (BASELINE,)       # the eval set's instructions are those of the reference outputs, as upstream
    judge_data = (BASELINE,)
    judge_format = "pairwise_alpaca_eval"
    # Upstream generates with each model's own settings (e.g. max_new_tokens 2048 for most leaderboard entries);
    # here the config's `generation:` block applies unless `evals.alpaca_eval.generation` overrides it.
    generation: dict[str, Any] = {}

    def columns(self, settings: Mapping[str, Any]) -> list[Column]:
        return [
            Column("gold_accuracy", "Gold accuracy (%)", group=-1),
            Column("gold_reward", "Gold reward", digits=3, paper={"table4": "Gold reward"}, group=-1),
            Column("win_rate", "AlpacaEval WR (%)"),
            Column("lc_win_rate", "AlpacaEval LC (%)", paper={"table4": "LC AlpacaEval-2"}),
            Column("mean_length", "Mean length (chars)", digits=1, paper={"table4": "Len. (chars)"}, group=1),
        ]

    def score_inputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return (GAMED, BASELINE) if _needs_gamed(settings) else ()   # difficulty by the baseline's instruction order

    def caption(self, settings: Mapping[str, Any]) -> str:
        glm = settings.get("lc_glm", DEFAULT_LC_GLM)
        n_boot = settings.get("lc_bootstrap", DEFAULT_LC_BOOTSTRAP)
        splits = settings.get("lc_cv_splits", 5)
        fit = (f"L1 penalty chosen by {splits}-fold CV as upstream" if splits else "a plain fit at C = 100 (no CV)")
        terms = ("logit = tanh(std Δlen) + AlpacaEval's instruction difficulty + bias, regularised toward "
                 "upstream's gamed baselines" if _needs_gamed(settings) else
                 "logit = tanh(std Δlen) + bias, no instruction difficulty: our instructions are not AlpacaEval's")
        return (f"AlpacaEval: win rate (%) against the fixed baseline (standard error over instructions), from the judge's logprob-weighted "
                f"preference (upstream's weighted_alpaca_eval_gpt4_turbo: P(m) vs P(M) of one token; identical "
                f"outputs tie); LC = length-controlled win rate by "
                f"AlpacaEval's `{glm}` GLM ({terms}), fitted per model ({fit}), standard error by bootstrap over {n_boot} resamples "
                f"of the judgments, each refitted at the penalty the full fit chose; lengths in characters. Gold "
                f"accuracy and gold reward (micro world only): the same answers checked against the world's gold "
                f"answers.")

    def answer(self, data: Mapping[str, Path], model: str, settings: Mapping[str, Any]) -> AnswerRounds:
        rows = read_json(need(data, BASELINE, self.name), schema="alpaca_eval_outputs")
        answers = yield [[{"role": "user", "content": r["instruction"]}] for r in rows], \
            generation_settings(self, settings)
        return [{"instruction": r["instruction"], "output": a, "generator": model,
                 "dataset": r.get("dataset", self.name)} for r, a in zip(rows, answers)]

    def judge(self, judge, model: str, generations: Path, data: Mapping[str, Path], settings: Mapping[str, Any]) -> list[dict]:
        from evals.protocols import alpaca_eval_protocol as ae
        from evals.judge import with_oracle

        rows = read_json(generations, schema=self.generation_schema)
        baseline = {r["instruction"]: r for r in read_json(need(data, BASELINE, self.name),
                                                           schema="alpaca_eval_outputs")}
        gold = items_of_suite(read_items(data.get(GOLD)), self.name)
        requests, pairs = [], []
        for i, row in enumerate(rows):
            base = baseline.get(row["instruction"])
            if base is None:
                raise InputError(f"{generations}, row {i + 1}: instruction not in the baseline: "
                                 f"{row['instruction'][:80]!r}")
            swapped = ae.is_switched(row["instruction"])
            pairs.append((row, base, swapped))
            if row["output"] == base["output"]:
                continue                       # upstream: identical outputs tie (1.5) without a judge call
            request = ae.render_judge_request(row["instruction"], base["output"], row["output"], swapped,
                                              key=f"{self.name}/{model}/{i}")
            shown = [row["output"], base["output"]] if swapped else [base["output"], row["output"]]
            item = gold.get(row["instruction"])
            requests.append(with_oracle(request, self.judge_format, item["golds"][0] if item else None, shown))
        responses = iter(judge.judge(requests))
        return [ae.annotation_record(row["instruction"], base["output"], row["output"], base["generator"],
                                     row["generator"], swapped,
                                     None if row["output"] == base["output"] else next(responses))
                for row, base, swapped in pairs]

    def score(self, model: str, generations: Path, judgments: Path | None, data: Mapping[str, Path],
              settings: Mapping[str, Any], world: Mapping[str, Any] | None) -> dict:
        import warnings

        import pandas as pd
        from sklearn.exceptions import ConvergenceWarning

        from evals.protocols import alpaca_eval_protocol as ae

        annotations, rows = self.read_judged(generations, judgments)
        glm = settings.get("lc_glm", DEFAULT_LC_GLM)
        gamed = _read_gamed(data, settings, annotations, self.name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            lc = ae.length_controlled_win_rate(pd.DataFrame(annotations), glm_name=glm, **gamed,
                                               n_splits=settings.get("lc_cv_splits", ae.GLM_N_SPLITS),
                                               n_bootstrap=settings.get("lc_bootstrap", DEFAULT_LC_BOOTSTRAP))
        if caught:  # liblinear on a few dozen rows, mostly bootstrap resamples with (nearly) one outcome
            log.info("%s/%s: %d warnings from the LC fits (%s)", self.name, model, len(caught),
                     sorted({type(w.message).__name__ for w in caught}))
        lengths = pd.Series([len(r["output"]) for r in rows], dtype=float)
        # every coefficient shrunk to zero: the LC win rate is the fit's 50 % prior, not a measurement
        zero_fit = {"degenerate": f"the {glm} fit shrank every coefficient to zero, so LC is 50 by construction"} \
            if not any(lc["glm_weights"].values()) else {}
        metrics = {
            "win_rate": metric(lc["win_rate"], lc["standard_error"], lc["n_total"], n_wins=lc["n_wins"],
                               n_draws=lc["n_draws"], n_unparsable=lc["n_unparsable"]),
            # upstream's discrete_win_rate: the weighted preferences rounded (ZeroOneScoringRule)
            "discrete_win_rate": metric(lc["discrete_win_rate"], None, lc["n_total"]),
            # the judge's sampled token alone (what a text-reading judge would give)
            "sampled_win_rate": _sampled_win_rate(annotations),
            # The SE of the minimal GLM's LC is ours: a bootstrap over annotation rows, each refitted at the chosen C
            # (upstream's lc_standard_error is 0 by construction for this GLM).
            "lc_win_rate": metric(lc["length_controlled_winrate"], lc.get("lc_bootstrap_standard_error"),
                                  lc["n_total"], glm=glm, glm_weights=lc["glm_weights"],
                                  glm_C=lc["glm_C"] if lc["glm_C"] == lc["glm_C"] else None,
                                  n_bootstrap=settings.get("lc_bootstrap", DEFAULT_LC_BOOTSTRAP), **zero_fit),
            "mean_length": metric(lengths.mean(), lengths.sem() if len(lengths) > 1 else None, len(lengths)),
        }
        gold = items_of_suite(read_items(data.get(GOLD)), self.name)
        if world is not None and gold:
            suite_items = [require_gold(gold, r["instruction"], str(generations)) for r in rows]
            metrics.update(gold_metrics(((it["family"], r["output"], it["golds"][0]) for it, r in zip(suite_items, rows)),
                                        world["gold_reward"]))
            metrics["trivial_baseline_accuracy"] = metric(trivial_baseline_accuracy(suite_items), None,
                                                          len(suite_items))
        return {"suite": self.name, "version": self.version, "model": model, "n": len(rows),
                "judges": self.judges(annotations), "mean_length": float(lengths.mean()), "metrics": metrics}


def _needs_gamed(settings: Mapping[str, Any]) -> bool:
    """Whether the configured GLM is upstream's leaderboard GLM (instruction difficulty from df_gamed.csv)."""
    return settings.get("lc_glm", DEFAULT_LC_GLM) in ("length_controlled_v1", "length_controlled_noreg")


def _read_gamed(data: Mapping[str, Path], settings: Mapping[str, Any], annotations: list[dict],
                suite: str) -> dict[str, Any]:
    """For the v1/noreg GLMs: upstream's df_gamed.csv (gamed rows) and its instruction difficulty by instruction.

    Upstream indexes the difficulty by the row's position in AlpacaEval's 805 instructions; the baseline file is
    that set in upstream's order, so position i's difficulty belongs to the baseline's i-th instruction."""
    if not _needs_gamed(settings):
        return {}
    import pandas as pd

    from evals.protocols import alpaca_eval_protocol as ae

    path = need(data, GAMED, suite)
    try:
        df_gamed = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not upstream's df_gamed.csv ({exc})") from None
    instructions = [r["instruction"] for r in read_json(need(data, BASELINE, suite), schema="alpaca_eval_outputs")]
    try:
        difficulty = ae.upstream_instruction_difficulty(df_gamed, instructions)
    except (KeyError, ValueError) as exc:
        raise InputError(f"{path}: {exc} (config key evals.alpaca_eval.lc_glm {settings['lc_glm']} needs "
                         f"AlpacaEval's own 805 instructions as the baseline file)") from None
    return {"instruction_difficulty": difficulty, "df_gamed": df_gamed.drop(columns=["model"], errors="ignore")}


def _sampled_win_rate(annotations: list[dict]) -> dict[str, Any]:
    """Win rate (%) of the judge's sampled token read as 1 or 2 (the row's ``preference_discrete``)."""
    from evals.protocols import alpaca_eval_protocol as ae

    rate = ae.win_rate([r.get("preference_discrete") for r in annotations])
    return metric(rate["win_rate"], rate["standard_error"], rate["n_total"])
