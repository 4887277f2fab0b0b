"""evals/aggregate.py on hand-written score, leaderboard and provenance files: every cell comes from a file,
columns come from the suite registry, and the paper-shaped tables carry the published rows a config asks for."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from scipy.stats import t

from evals import aggregate
from pipeline.io import InputError, write_json

MODELS = ("sft", "dpo-s0")   # the shared SFT checkpoint and one seed of DPO (pipeline/config.py seeded_name)
EVALS = {
    "alpaca_eval": {"judge": "oracle", "lc_bootstrap": 7},
    "mt_bench": {"judge": "oracle"},
    "arena_hard": {"judge": "oracle"},
    "academic": {"tasks": [{"name": "gsm8k", "title": "GSM-8K"}, {"name": "local_mc", "title": "Choice (%)"}]},
}


def m(value, stderr=None, n=10, **extra):
    return {"value": value, "stderr": stderr, "n": n, **extra}


def write_study(root, with_gold=True, judge="oracle", models=MODELS):
    for k, model in enumerate(models):
        base = 10.0 * (k + 1)
        alpaca = {"win_rate": m(base, 1.0), "lc_win_rate": m(base + 1, 2.0), "mean_length": m(40.0 + k, 0.5)}
        if with_gold:
            alpaca |= {"gold_accuracy": m(50.0 + k, 3.0), "gold_reward": m(0.25, 0.01)}
        scores = {
            "alpaca_eval": alpaca,
            "mt_bench": {"turn_1": m(5.0 + k, 0.1), "turn_2": m(4.0, 0.2), "overall": m(4.5 + k / 2, 0.1)},
            "arena_hard": {"score": m(base + 2, None, lower=base, upper=base + 5)},
            "academic": {"gsm8k": m(70.0 + k, 1.5), "local_mc": m(30.0, 4.0)},
        }
        for suite, metrics in scores.items():
            judged = {"judges": [judge]} if suite != "academic" else {}
            write_json(root / "scores" / model / f"{suite}.json",
                       {"suite": suite, "model": model, "n": 10, "metrics": metrics, **judged}, schema="score")
        write_json(root / "models" / model / "provenance.json", {
            "stage": model, "module": model.split("-s")[0], "checkpoint_hash": f"hash-{model}", "config_hash": "c", "config": {},
            "parents": {"policy": {"path": "x", "checkpoint_hash": "hash-sft" if model != "sft" else "hash-base"}},
            "git_commit": "g", "libraries": {}, "seed": 0, "wall_time_s": 12.5 + k, "tokens_seen": 1000 * (k + 1),
            "compute": {"device": "cpu", "world_size": 1, "effective_batch_size": 16,
                        "per_device_train_batch_size": 16, "gradient_accumulation_steps": 1, "device_hours": 0.0}},
            schema="provenance")
    write_json(root / "scores" / "leaderboard" / "arena_hard.json", {
        "suite": "arena_hard", "version": "1",
        "models": {model: {"style_score": m(20.0 + k, None, lower=15.0, upper=25.0 + k)} for k, model in enumerate(models)}},
        schema="leaderboard")


def run(root, evals=EVALS, micro=True, models=MODELS):
    args = ["--scores", *[str(root / "scores" / mo / f"{s}.json") for mo in models for s in evals],
            "--leaderboards", str(root / "scores" / "leaderboard" / "arena_hard.json"), "--models", *models,
            "--models-dir", str(root / "models"), "--evals-json", json.dumps(evals, sort_keys=True),
            "--suites", *evals, "--out-dir", str(root / "tables")]
    aggregate.main(args + (["--micro-world"] if micro else []))
    return root / "tables"


def test_methods_table_cells_come_from_the_files(tmp_path):
    write_study(tmp_path)
    table = pd.read_csv(run(tmp_path) / "methods.csv")
    assert list(table["Model"]) == ["sft", "dpo"]                  # one row per variant
    titles = [c for c in table.columns if not c.endswith((" SE", " CI low", " CI high"))]
    assert titles == ["Model", "Method", "Seeds", "Gold accuracy (%)", "Gold reward", "AlpacaEval WR (%)",
                      "AlpacaEval LC (%)", "MT-Bench T1", "MT-Bench T2", "MT-Bench", "Arena-Hard (%)",
                      "Arena-Hard SC (%)", "GSM-8K", "Choice (%)", "Mean length (chars)", "Seeds beating SFT",
                      "Tokens seen", "Checkpoint", "Parent", "CI from fewer than 2 seeds"]
    dpo = table.set_index("Model").loc["dpo"]
    # one seed: the suite's own 95 % CI, value ± 1.96 se, or its interval
    assert dpo["AlpacaEval LC (%)"] == 21.0 and dpo["AlpacaEval LC (%) CI high"] == pytest.approx(21.0 + 1.96 * 2.0,
                                                                                                     abs=1e-3)
    assert (dpo["Arena-Hard (%)"], dpo["Arena-Hard (%) CI low"], dpo["Arena-Hard (%) CI high"]) == (22.0, 20.0, 25.0)
    assert (dpo["Arena-Hard SC (%)"], dpo["Arena-Hard SC (%) CI high"]) == (21.0, 26.0)
    assert dpo["Tokens seen"] == 2000 and dpo["Parent"] == "hash-sft" and dpo["Checkpoint"] == "hash-dpo-s0"
    assert dpo["Seeds"] == "1" and dpo["Seeds beating SFT"] == "0/1"  # gold reward 0.25 = SFT's: not above it
    markdown = (tmp_path / "tables" / "methods.md").read_text()
    assert "| 21.0 [17.1, 24.9] ‡ " in markdown and "22.0 [20.0, 25.0] ‡" in markdown
    assert "| 11.0 [7.1, 14.9]    |" in markdown                   # SFT: the shared checkpoint, no ‡
    assert "`length_controlled_minimal` GLM" in markdown and "7 resamples" in markdown
    assert json.loads((tmp_path / "tables" / "methods.json").read_text())[1]["MT-Bench"] == 5.0


def test_paper_tables_have_the_published_shapes(tmp_path):
    write_study(tmp_path)
    tables = run(tmp_path)
    t4 = pd.read_csv(tables / "table4.csv")
    assert [c for c in t4.columns if not c.endswith((" SE", " CI low", " CI high"))] == [
        "Model", "Method", "Seeds", "Gold reward", "LC AlpacaEval-2", "MT-Bench", "Arena-Hard", "Len. (chars)",
        "CI from fewer than 2 seeds"]
    assert t4.set_index("Model").loc["sft", "LC AlpacaEval-2"] == 11.0
    assert "(published)" not in (tables / "table4.md").read_text()
    t5 = (tables / "table5.md").read_text()
    assert "GSM-8K" in t5 and "MT-Bench" not in t5 and "Academic: lm-eval GSM-8K = gsm8k" in t5


def test_published_rows_join_the_tables_a_config_names(tmp_path):
    write_study(tmp_path, with_gold=False)
    evals = {**EVALS, "alpaca_eval": {**EVALS["alpaca_eval"], "published": "rlhf_workflow"},
             "academic": {**EVALS["academic"], "published": "rlhf_workflow"}}
    tables = run(tmp_path, evals, micro=False)
    t4 = pd.read_csv(tables / "table4.csv").set_index("Model")
    assert t4.loc["Iterative RLHF (published)", "LC AlpacaEval-2"] == 37.2
    assert t4.loc["DPO baseline (published)", "MT-Bench"] == 8.17
    assert t4.loc["dpo", "Arena-Hard"] == 22.0 and "Gold reward" not in t4.columns
    t5 = pd.read_csv(tables / "table5.csv").set_index("Model")
    assert t5.loc["SFT baseline (published)", "GSM-8K"] == 74.2 and t5.loc["dpo", "GSM-8K"] == 71.0
    assert pd.isna(t5.loc["dpo", "MMLU"]) and t5.loc["SFT baseline (published)", "MBPP"] == 62.3
    assert "Choice (%)" in t5.columns  # our task without a published counterpart stays
    assert "RLHF Workflow (Dong et al., 2024)" in (tables / "table5.md").read_text()
    methods = pd.read_csv(tables / "methods.csv")
    assert "Gold accuracy (%)" not in methods.columns  # no gold metrics outside the micro world


def test_missing_score_file_is_named(tmp_path):
    write_study(tmp_path)
    (tmp_path / "scores" / "dpo-s0" / "mt_bench.json").unlink()
    args = ["--scores", str(tmp_path / "scores" / "sft" / "mt_bench.json"), "--models", *MODELS,
            "--models-dir", str(tmp_path / "models"), "--evals-json", json.dumps({"mt_bench": {"judge": "o"}}),
            "--out-dir", str(tmp_path / "tables")]
    with pytest.raises(InputError, match="no mt_bench score file for model 'sft'|no mt_bench score file for model 'dpo-s0'"):
        aggregate.main(args)


def test_unknown_published_table_is_a_clear_error(tmp_path):
    write_study(tmp_path)
    with pytest.raises(InputError, match=r"evals.mt_bench.published: no .*nope.yaml \(published tables: \['rlhf_workflow'\]\)"):
        run(tmp_path, {**EVALS, "mt_bench": {"judge": "oracle", "published": "nope"}})


def test_wall_time_lives_apart_so_tables_repeat_byte_for_byte(tmp_path):
    """Bug guarded: a wall-time column in methods.* makes two runs of the same config give different tables."""
    write_study(tmp_path)
    first = {name: (run(tmp_path) / name).read_bytes() for name in ("methods.md", "methods.csv", "methods.json",
                                                                     "table4.md", "table5.csv")}
    for model in MODELS:
        path = tmp_path / "models" / model / "provenance.json"
        record = json.loads(path.read_text())
        record["wall_time_s"] += 99.0
        write_json(path, record, schema="provenance")
    tables = run(tmp_path)
    assert {name: (tables / name).read_bytes() for name in first} == first
    compute = pd.read_csv(tables / "compute.csv").set_index("Model")
    assert compute.loc["dpo-s0", "Train wall time (s)"] == 13.5 + 99.0


def test_published_tables_print_ours_minus_published_and_name_the_judge(tmp_path):
    """Every published table gets a difference row per published row whose `ours` model was measured, and every
    judged suite's caption names its judge, flagged as not comparable when the paper's judge was another."""
    write_study(tmp_path, with_gold=False, judge="gpt-4o")
    evals = {suite: {**block, "published": "rlhf_workflow"} for suite, block in EVALS.items()}
    tables = run(tmp_path, evals, micro=False)
    t4 = pd.read_csv(tables / "table4.csv").set_index("Model")
    assert t4.loc["Δ dpo − DPO baseline", "LC AlpacaEval-2"] == pytest.approx(21.0 - 22.5)
    assert t4.loc["Δ sft − SFT baseline", "MT-Bench"] == pytest.approx(4.5 - 7.69)
    assert "Δ iterative_dpo − Iterative RLHF" not in t4.index       # no such model measured here
    t5 = pd.read_csv(tables / "table5.csv").set_index("Model")
    assert t5.loc["Δ sft − SFT baseline", "GSM-8K"] == pytest.approx(70.0 - 74.2)
    text = (tables / "table4.md").read_text()
    assert ("alpaca_eval judge: gpt-4o — not the published judge (gpt-4-1106-preview): these numbers are not "
            "comparable with the published rows") in text
    assert "mt_bench judge: gpt-4o — not the published judge (gpt-4)" in text


def test_the_published_judge_is_named_as_such(tmp_path):
    write_study(tmp_path, with_gold=False, judge="gpt-4-1106-preview")
    evals = {"alpaca_eval": {**EVALS["alpaca_eval"], "published": "rlhf_workflow"}}
    text = (run(tmp_path, evals, micro=False) / "methods.md").read_text()
    assert "alpaca_eval judge: gpt-4-1106-preview (the published judge)" in text


def test_table6_prints_the_published_rows_and_our_difference():
    """The report's Table 6 rows (iterative DPO 37.2 / 29.1 / 656, concise 41.9 / 22.1 / 382, UltraRM-13B) come
    first, then ours, then ours minus published for the two rows we reproduce; lengths in different units (ours in
    characters, the paper's unstated) are never differenced."""
    from evals.length_analysis import published_table6, table6

    models = pd.DataFrame([
        {"model": "sft", "module": "sft", "length_penalty": None, "mean_length": 900.0, "lc_win_rate": 9.0,
         "arena_hard": 5.0, "gsm8k": 70.0},
        {"model": "iterative_dpo", "module": "iterative_dpo", "length_penalty": 0.0, "mean_length": 1500.0,
         "lc_win_rate": 33.0, "arena_hard": 25.0, "gsm8k": 79.0},
        {"model": "iterative_dpo_concise", "module": "iterative_dpo", "length_penalty": 0.001, "mean_length": 800.0,
         "lc_win_rate": 40.0, "arena_hard": 20.0, "gsm8k": 78.0}])
    t6 = table6(models, published_table6(["rlhf_workflow"])).set_index("Model")
    assert t6.loc["Ours (published)", ["LC Alp.", "Arena-H.", "Len."]].tolist() == [37.2, 29.1, 656]
    assert t6.loc["Ours-concise (published)", ["LC Alp.", "Arena-H.", "Len."]].tolist() == [41.9, 22.1, 382]
    assert t6.loc["UltraRM-13B (published)", "LC Alp."] == 20.7
    assert t6.loc["Δ iterative_dpo − Ours", "LC Alp."] == pytest.approx(33.0 - 37.2)
    assert t6.loc["Δ iterative_dpo_concise − Ours-concise", "Arena-H."] == pytest.approx(20.0 - 22.1)
    assert pd.isna(t6.loc["Δ iterative_dpo − Ours", "Len."]) and t6.loc["iterative_dpo", "Len. (chars)"] == 1500.0


def test_degenerate_cells_are_marked_and_the_caption_says_why(tmp_path):
    """Guards against a silent degenerate number: an LC fit with every coefficient zero (LC exactly 50) or a
    suite whose judgments were all unparsable (n = 0) printed like a measurement."""
    write_study(tmp_path)
    path = tmp_path / "scores" / "dpo-s0" / "alpaca_eval.json"
    score = json.loads(path.read_text())
    score["metrics"]["lc_win_rate"] = m(50.0, 0.0, degenerate="the fit shrank every coefficient to zero")
    write_json(path, score, schema="score")
    path = tmp_path / "scores" / "sft" / "mt_bench.json"
    score = json.loads(path.read_text())
    score["metrics"]["turn_2"] = m(0.0, None, n=0)
    write_json(path, score, schema="score")
    tables = run(tmp_path)
    markdown = (tables / "methods.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "50.0 [50.0, 50.0] ‡ †" in rows["dpo"] and rows["dpo"].count("†") == 1
    assert "| 0.00 †" in rows["sft"] and rows["sft"].count("†") == 1
    assert "- † dpo, AlpacaEval LC (%): the fit shrank every coefficient to zero" in markdown
    assert "- † sft, MT-Bench T2: computed from no usable item (every judgment unparsable or missing)" in markdown
    assert "50.0 [50.0, 50.0] ‡ †" in (tables / "table4.md").read_text()
    assert "50.0 [50.0, 50.0] ‡ †" in (tables / "methods.html").read_text()
    csv = pd.read_csv(tables / "methods.csv").set_index("Model")
    assert csv.loc["dpo", "AlpacaEval LC (%) degenerate"] == "the fit shrank every coefficient to zero"


def test_table6_has_one_row_per_lambda_with_every_suite_and_the_length():
    """The λ sweep's Table 6: one row per swept model with its λ, AlpacaEval WR and LC, MT-Bench, Arena-Hard, the
    academic tasks, gold reward and mean length; a degenerate LC cell is marked (not printed as 50.0 silently)."""
    from evals.aggregate import to_markdown, with_notes
    from evals.length_analysis import TABLE6_DIGITS, table6

    def row(model, lam, lc, degenerate=None):
        return {"model": model, "module": "iterative_dpo" if lam is not None else "sft", "length_penalty": lam,
                "mean_length": 100.0 - 1000 * (lam or 0), "win_rate": 30.0 - 100 * (lam or 0), "lc_win_rate": lc,
                "lc_degenerate": degenerate, "mt_bench": 5.0, "arena_hard": 20.0, "gold_reward": 0.4, "gsm8k": 70.0}

    models = pd.DataFrame([row("sft", None, 40.0), row("dpo", None, 41.0) | {"module": "dpo"},
                           row("iterative_dpo", 0.0, 42.0), row("iterative_dpo_concise_l0.01", 0.01, 43.0),
                           row("iterative_dpo_concise_l0.03", 0.03, 50.0, "the fit shrank every coefficient to zero")])
    t6 = table6(models)
    assert list(t6["Model"]) == ["sft", "iterative_dpo", "iterative_dpo_concise_l0.01", "iterative_dpo_concise_l0.03"]
    assert list(t6["Len. Pen."]) == ["-", 0.0, 0.01, 0.03]
    assert {"LC Alp.", "WR Alp.", "MT-Bench", "Arena-H.", "GSM-8K", "Gold reward", "Len. (chars)"} <= set(t6.columns)
    assert t6.set_index("Model").loc["iterative_dpo_concise_l0.01", "Len. (chars)"] == 90.0
    records = t6.to_dict(orient="records")
    markdown = to_markdown(records, TABLE6_DIGITS, with_notes("", records))
    assert "| 50.0 †" in markdown and markdown.count("†") == 2
    assert "- † iterative_dpo_concise_l0.03, LC Alp.: the fit shrank every coefficient to zero" in markdown
    assert "LC Alp. degenerate" not in table6(models.assign(lc_degenerate=None)).columns


def test_seed_interval_matches_a_hand_computation():
    """Bug guarded: a CI over seeds that uses z instead of t, divides the variance by S - 1 twice, or drops the
    suite's own item noise (items are shared across seeds, so it does not average out)."""
    from evals.aggregate import seed_interval

    t2 = 4.302652729911275                                   # t_{0.975, 2}
    mean, half = seed_interval([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert mean == 2.0 and half == pytest.approx(t2 * 1.0 / 3 ** 0.5)     # s^2 = 1
    _, half = seed_interval([1.0, 2.0, 3.0], [0.3, 0.4, None])            # mean se^2 over the seeds that have one
    seeds, items = 1.0 / 3, (0.09 + 0.16) / 2
    df = (seeds + items) ** 2 / (seeds ** 2 / 2)                          # Welch-Satterthwaite, items known: 3.78
    assert half == pytest.approx(t.ppf(0.975, df) * (seeds + items) ** 0.5) and 3.7 < df < 3.8
    assert seed_interval([4.0, 4.0], [0.5, 0.5])[1] == pytest.approx(1.96 * 0.5, abs=1e-3)   # no seed spread: z
    assert seed_interval([5.0], [2.0]) == (5.0, pytest.approx(1.96 * 2.0, abs=1e-3))  # S = 1: the suite's own
    assert seed_interval([5.0], [None]) == (5.0, None)


def test_two_seeds_give_mean_ci_share_and_per_seed_file(tmp_path):
    """Score files of two DPO seeds on disk: each cell is the mean over seeds with its t-based CI, the headline
    (gold reward) ranking says in how many seeds DPO beats SFT, no ‡ with 2 seeds, and per_seed.csv holds the values
    the cells came from. Guards against a table printing one seed (or the last file read) as the method's number."""
    models = ("sft", "dpo-s0", "dpo-s1")
    write_study(tmp_path, models=models)
    for model, gold, wr in (("sft", 0.30, 10.0), ("dpo-s0", 0.50, 20.0), ("dpo-s1", 0.20, 30.0)):
        path = tmp_path / "scores" / model / "alpaca_eval.json"
        score = json.loads(path.read_text())
        score["metrics"]["gold_reward"] = m(gold, 0.0)
        score["metrics"]["win_rate"] = m(wr, 1.0)
        if model == "dpo-s1":
            score["metrics"]["lc_win_rate"] = m(50.0, 0.0, degenerate="every coefficient zero")
        write_json(path, score, schema="score")
    tables = run(tmp_path, models=models)
    t1 = 12.706204736174707                                      # t_{0.975, 1}
    dpo = pd.read_csv(tables / "methods.csv").set_index("Model").loc["dpo"]
    assert dpo["Gold reward"] == pytest.approx(0.35)
    half = t1 * (0.045 / 2) ** 0.5                                # s^2 = (0.15^2 + 0.15^2) / 1, se 0
    assert (dpo["Gold reward CI low"], dpo["Gold reward CI high"]) == (pytest.approx(0.35 - half),
                                                                        pytest.approx(0.35 + half))
    wr_df = (50.0 / 2 + 1.0) ** 2 / ((50.0 / 2) ** 2 / 1)          # s^2 = 50, mean se^2 = 1: Welch-Satterthwaite
    wr_half = t.ppf(0.975, wr_df) * (50.0 / 2 + 1.0) ** 0.5
    assert dpo["AlpacaEval WR (%) CI high"] == pytest.approx(25.0 + wr_half)
    assert dpo["Seeds"] == "2" and dpo["Seeds beating SFT"] == "1/2"   # 0.50 > 0.30, 0.20 < 0.30
    assert dpo["Checkpoint"] == "hash-dpo-s0 hash-dpo-s1" and not dpo["CI from fewer than 2 seeds"]
    markdown = (tables / "methods.md").read_text()
    assert "‡" not in markdown and "Seeds beating SFT: the seeds whose Gold reward is above sft's" in markdown
    assert "- † dpo, AlpacaEval LC (%): seed 1: every coefficient zero" in markdown   # one seed's fit: still marked
    per_seed = pd.read_csv(tables / "per_seed.csv")
    gold = per_seed[per_seed["metric"] == "gold_reward"].set_index("model")
    assert gold.loc["dpo-s1", ["variant", "seed", "value"]].tolist() == ["dpo", 1, 0.2]
    assert pd.isna(gold.loc["sft", "seed"]) and gold.loc["sft", "variant"] == "sft"


def test_table6_rows_are_means_over_seeds_with_a_ci_and_one_seed_is_marked():
    """Table 6 over seeds: a variant's row is the mean of its seeds' rows with the seed_interval CI, a variant with
    one seed is marked ‡ (and the caption says why), SFT (the shared checkpoint) is not. Guards against Table 6
    printing one seed's numbers, or a one-seed CI passed off as covering training variance."""
    from evals.aggregate import to_markdown, with_notes
    from evals.length_analysis import TABLE6_DIGITS, table6, variant_summary

    def row(model, lc, se, lam=0.0):
        variant, _, seed = model.rpartition("-s")
        return {"model": model, "variant": variant or model, "seed": int(seed) if variant else None,
                "module": "sft" if model == "sft" else "iterative_dpo", "length_penalty": None if model == "sft" else lam,
                "lc_win_rate": lc, "lc_win_rate_se": se, "mean_length": 100.0, "mean_length_se": None,
                "lc_degenerate": None}

    models = pd.DataFrame([row("sft", 40.0, 1.0), row("iterative_dpo-s0", 42.0, 0.0), row("iterative_dpo-s1", 46.0, 0.0),
                           row("iterative_dpo_concise_l0.03-s0", 44.0, 2.0, 0.03)])
    t6 = table6(variant_summary(models)).set_index("Model")
    half = 12.706204736174707 * (8.0 / 2) ** 0.5                  # t_{0.975,1} * sqrt(s^2 / 2), s^2 = 8
    assert t6.loc["iterative_dpo", "LC Alp."] == 44.0
    assert t6.loc["iterative_dpo", "LC Alp. CI high"] == pytest.approx(44.0 + half)
    assert t6.loc["iterative_dpo_concise_l0.03", "LC Alp. CI low"] == pytest.approx(44.0 - 1.96 * 2.0, abs=1e-3)
    records = t6.reset_index().to_dict(orient="records")
    markdown = to_markdown(records, TABLE6_DIGITS, with_notes("", records))
    lines = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "44.0 [40.1, 47.9] ‡" in lines["iterative_dpo_concise_l0.03"]
    assert "‡" not in lines["iterative_dpo"] and "‡" not in lines["sft"]
    assert "- ‡ CI from fewer than 2 seeds: training variance not included" in markdown
