"""Tests of evals/protocols/alpaca_eval_protocol.py against upstream alpaca_eval 0.6.6 (tatsu-lab/alpaca_eval @ f19c323d).

Where a test re-derives an upstream function it names it; the tests marked "installed package" run the real
``alpaca_eval`` (our dependency, pinned to 0.6.6) on the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import make_scorer
from sklearn.model_selection import GroupKFold

from evals.protocols import alpaca_eval_protocol as ae
from evals.judges.base import JudgeRequest, JudgeResponse

# sha256 of src/alpaca_eval/evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt at v0.6.6.
UPSTREAM_TEMPLATE_SHA256 = "784227e6dc2832fc08c43d2c8ea3a308e7523780187a1aaad2f85e30bac85f62"

# Rows of upstream's stored annotations, results/{model}/weighted_alpaca_eval_gpt4_turbo/annotations.json @ v0.6.6:
# (instruction, the judge's most likely token among m/M in raw_completion, upstream's stored preference).
# Upstream stored 2 - P(m) when not switched and 1 + P(m) when switched, so these rows pin the order coin too.
UPSTREAM_ROWS = [
    ("How did US states get their names?", "M", 1.0),  # alpaca-7b
    ("What is some cool music from the 1920s?", "m", 1.0),  # alpaca-7b
    ("How do I wrap a present neatly?", "m", 1.0),  # alpaca-7b
    ("What are the best exercises for beginners?", "M", 1.0),  # alpaca-7b
    ("How do I dice without slicing my finger", "M", 1.9587),  # NullModel
    ("Who is Larry Page?", "M", 1.9592),  # NullModel
    ("When was Canada colonized?", "m", 1.9883),  # NullModel
    ("Why did humans evolve to believe in God?", "m", 1.9623),  # NullModel
]

# The micro-world-like synthetic judge: logit P(model wins) = quality + length_bias * tanh(delta_len / LENGTH_SCALE).
LENGTH_SCALE = 300.0


def synthetic_annotations(
    n: int,
    seed: int,
    *,
    model: str = "model",
    extra_len: int = 0,
    len_noise: float = 0.0,
    length_bias: float = 0.0,
    quality: float = 0.0,
    difficulty: np.ndarray | None = None,
) -> pd.DataFrame:
    """Annotations of a synthetic judge: baseline answers of 200..800 characters, the model's ``extra_len`` longer
    plus Gaussian noise; preference 2 with probability sigmoid(quality + length_bias * tanh(delta / scale) + d_i)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(200, 800, n)
    noise = np.round(rng.normal(0, len_noise, n)) if len_noise else 0
    model_len = np.maximum(1, base + extra_len + noise).astype(int)
    logit = quality + length_bias * np.tanh((model_len - base) / LENGTH_SCALE)
    if difficulty is not None:
        logit = logit + difficulty
    preference = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), 2.0, 1.0)
    return pd.DataFrame(
        {
            "instruction": [f"instruction {i:04d}" for i in range(n)],
            "output_1": ["a" * k for k in base],
            "output_2": ["b" * k for k in model_len],
            "preference": preference,
            "generator_1": "baseline",
            "generator_2": model,
        }
    )


# ---------------------------------------------------------------------------------------------------------------
# Template and request
# ---------------------------------------------------------------------------------------------------------------


def test_template_is_the_upstream_file() -> None:
    assert hashlib.sha256(ae.TEMPLATE_FILE.read_bytes()).hexdigest() == UPSTREAM_TEMPLATE_SHA256
    source = (ae.TEMPLATE_DIR / "SOURCE.md").read_text()
    assert ae.UPSTREAM_COMMIT in source and ae.UPSTREAM_REPO in source


def test_judge_call_is_the_weighted_annotators() -> None:
    """Guards against reading the judge's text instead of its logprobs: the request carries upstream's
    weighted_alpaca_eval_gpt4_turbo completions_kwargs @ v0.6.6 (max_tokens 1, temperature 1, logprobs,
    top_logprobs 5) and the parser is logprob_parser with m / [m, M], not binarised."""
    request = ae.render_judge_request("i", "a", "b", False, "k")
    assert request.sampling == {"max_tokens": 1, "temperature": 1, "logprobs": True, "top_logprobs": 5}
    assert ae.UPSTREAM_JUDGE_MODEL == "gpt-4-1106-preview"
    assert ae.PARSER_KWARGS == {"numerator_token": "m", "denominator_tokens": ["m", "M"], "is_binarize": False}


@pytest.mark.parametrize("swapped", [False, True])
def test_render_shows_both_outputs_in_order(swapped: bool) -> None:
    request = ae.render_judge_request("Name a colour.", "BASELINE ANSWER", "MODEL ANSWER", swapped, "alpaca_eval/3")
    assert isinstance(request, JudgeRequest) and request.key == "alpaca_eval/3"
    assert [m["role"] for m in request.messages] == ["system", "user"]
    user = request.messages[1]["content"]
    assert '"instruction": """Name a colour."""' in user
    first, second = ("MODEL ANSWER", "BASELINE ANSWER") if swapped else ("BASELINE ANSWER", "MODEL ANSWER")
    assert user.index('"model_identifier": "m"') < user.index(first) < user.index('"model_identifier": "M"')
    assert user.index('"model_identifier": "M"') < user.index(second)
    assert "{output_1}" not in user and "{output_2}" not in user and "{instruction}" not in user
    assert user.endswith("## Best Model Identifier")
    assert request.oracle["shown_outputs"] == {"m": first, "M": second}
    assert request.oracle["swapped"] is swapped


def _upstream_prompt_messages(template: str, values: dict[str, str]) -> list[dict[str, str]]:
    """Re-derivation of upstream utils.make_prompts (each placeholder's first occurrence replaced in turn) and
    utils.prompt_to_chatml (split on <|im_start|>, role = first line, content up to <|im_end|>, stripped)."""
    prompt = template
    for name in ("instruction", "output_1", "output_2"):
        prompt = prompt.replace("{" + name + "}", values[name], 1)
    messages = []
    for block in prompt.strip().split("<|im_start|>")[1:]:
        role, content = block.split("\n", 1)
        messages.append({"content": content.split("<|im_end|>", 1)[0].strip(), "role": role.strip()})
    return messages


def test_render_equals_upstream_prompt_building() -> None:
    values = {"instruction": "Write a haiku.\nAbout {braces}.", "output_1": "  one\n", "output_2": "two"}
    request = ae.render_judge_request(values["instruction"], values["output_1"], values["output_2"], False, "k")
    assert request.messages == _upstream_prompt_messages(ae.load_template(), values)


def test_render_fills_in_one_pass() -> None:
    """Upstream would fill a placeholder written inside the instruction; we keep values verbatim."""
    request = ae.render_judge_request("Explain {output_1}.", "A", "B", False, "k")
    assert '"""Explain {output_1}."""' in request.messages[1]["content"]


# ---------------------------------------------------------------------------------------------------------------
# Order coin and parser
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("instruction, token, upstream_preference", UPSTREAM_ROWS)
def test_coin_and_parser_reproduce_upstream_annotations(
    instruction: str, token: str, upstream_preference: float
) -> None:
    swapped = ae.is_switched(instruction)
    assert ae.parse_preference(token, swapped) == round(upstream_preference)


def test_coin_is_upstream_random_seeded_choice() -> None:
    """Upstream utils.random_seeded_choice(seed="is_switched_outputs" + instruction + "0", choices=[False, True])."""
    instructions = [f"task {i}" for i in range(2000)]
    expected = [random.Random("is_switched_outputs" + s + "0").choices([False, True], k=1)[0] for s in instructions]
    got = [ae.is_switched(s) for s in instructions]
    assert got == expected
    assert 0.45 < np.mean(got) < 0.55
    assert [ae.is_switched(s, seed=1) for s in instructions] != got


@pytest.mark.parametrize("text, verdict", [("m", "m"), ("M", "M"), (" M\n", "M"), ("**m**", "m"), ('"M".', "M")])
def test_parse_verdict_good(text: str, verdict: str) -> None:
    assert ae.parse_verdict(text) == verdict


@pytest.mark.parametrize("text", ["", None, "Model M", "m or M", "mM", "N", "The best model is m", "M\nbecause"])
def test_parse_unparsable_is_none(text: str | None) -> None:
    assert ae.parse_preference(text, swapped=False) is None
    assert ae.parse_preference(text, swapped=True) is None


@pytest.mark.parametrize("text, swapped, preference", [("m", False, 1.0), ("M", False, 2.0), ("m", True, 2.0),
                                                       ("M", True, 1.0)])
def test_parse_preference_maps_back_the_swap(text: str, swapped: bool, preference: float) -> None:
    assert ae.parse_preference(text, swapped) == preference


def _response(top_logprobs, text="m") -> JudgeResponse:
    return JudgeResponse(key="alpaca_eval/0", judge_id="judge", prompt_hash="h", text=text, latency_s=0.1,
                         cache_hit=False, top_logprobs=top_logprobs)


def test_annotation_record_keeps_unparsable_rows() -> None:
    """Neither m nor M among the top logprobs: upstream's NaN, kept as None and excluded from the scores."""
    row = ae.annotation_record("q", "a", "b", "baseline", "model", True,
                               _response([{"token": "The", "logprob": -0.1}], "The"))
    assert row["preference"] is None and row["raw_completion"] == "The"
    assert row["annotator"] == ae.ANNOTATOR and row["generator_2"] == "model"
    json.dumps(row)


def test_annotation_record_needs_logprobs() -> None:
    """A judge that answered without logprobs would silently give the discrete win rate: refused."""
    with pytest.raises(ValueError, match="without logprobs"):
        ae.annotation_record("q", "a", "b", "baseline", "model", False, _response(None))


def test_identical_outputs_are_a_tie_without_a_call() -> None:
    """Upstream PairwiseAnnotator._preprocess: output_1 == output_2 -> preference 1.5, never sent to the judge."""
    row = ae.annotation_record("q", "same", "same", "baseline", "model", False, None)
    assert row["preference"] == 1.5 and row["prompt_hash"] == ""
    with pytest.raises(ValueError):
        ae.annotation_record("q", "a", "b", "baseline", "model", False, None)


def test_weighted_preference_equals_installed_upstream_pipeline() -> None:
    """Installed package: alpaca_eval's RandomSwitchTwoColumnsProcessor (seed 0, seeded on the instruction, the
    pairwise annotator's 3 - x on switched rows) and logprob_parser on the judge's top logprobs in the shown order
    give the stored preference of each row; ours must equal it for every row."""
    from alpaca_eval.completion_parsers import logprob_parser
    from alpaca_eval.processors import RandomSwitchTwoColumnsProcessor

    rng = np.random.default_rng(3)
    n = 40
    df = pd.DataFrame({"instruction": [f"instr {i}" for i in range(n)], "output_1": [f"base {i}" for i in range(n)],
                       "output_2": [f"model {i}" for i in range(n)]})

    def flip(frame: pd.DataFrame) -> pd.DataFrame:  # pairwise_evaluator.py _fn_replace_if_switch
        if frame.empty or "preference" not in frame.columns:
            return frame
        return frame.assign(preference=frame["preference"].apply(lambda x: 3 - x))

    processor = RandomSwitchTwoColumnsProcessor(two_columns_to_switch=["output_1", "output_2"],
                                                fn_replace_if_switch=flip, random_seed_columns=["instruction"],
                                                _switch_column="is_switched_outputs", seed=0)
    shown = processor.preprocess(df)
    tops = []
    for _ in range(n):
        lm, lM = rng.normal(-1, 2, 2)
        tops.append([{"token": "m", "logprob": float(lm)}, {"token": "M", "logprob": float(lM)},
                     {"token": "Both", "logprob": -20.0}])
    shown["preference"] = [logprob_parser({"logprobs": {"content": [{"top_logprobs": t}]}}, numerator_token="m",
                                          denominator_tokens=["m", "M"], is_binarize=False)[0] for t in tops]
    upstream = processor.postprocess(shown)
    for i in range(n):
        swapped = ae.is_switched(df["instruction"][i])
        assert swapped == bool(shown["is_switched_outputs"][i])
        row = ae.annotation_record(df["instruction"][i], df["output_1"][i], df["output_2"][i], "b", "m", swapped,
                                   _response(tops[i]))
        assert row["preference"] == pytest.approx(upstream["preference"][i], abs=1e-12)
    assert 0 < sum(shown["is_switched_outputs"]) < n


# ---------------------------------------------------------------------------------------------------------------
# Win rate
# ---------------------------------------------------------------------------------------------------------------


def test_win_rate_hand_computed() -> None:
    # model scores (preference - 1): 1, 1, 0, 0.5 (tie), dropped (unparsable), 0.5 (legacy tie 0), 0.75 (soft)
    metrics = ae.win_rate([2, 2, 1, 1.5, None, 0, 1.75])
    scores = np.array([1, 1, 0, 0.5, 0.5, 0.75])
    assert metrics["win_rate"] == pytest.approx(62.5)
    assert metrics["standard_error"] == pytest.approx(scores.std(ddof=1) / np.sqrt(6) * 100)
    assert (metrics["n_wins"], metrics["n_wins_base"], metrics["n_draws"], metrics["n_total"]) == (3, 1, 2, 6)
    # ZeroOneScoringRule: 1.75 rounds to a win, ties stay ties: (1 + 1 + 0 + .5 + .5 + 1) / 6
    assert metrics["discrete_win_rate"] == pytest.approx(400 / 6)
    assert metrics["n_unparsable"] == 1


def _upstream_describe_head2head(predictions: pd.Series) -> dict[str, float]:
    """Re-derivation of upstream metrics/helpers.py BaseScoringRule.describe_head2head."""
    n_draws = ((predictions == 1.5) | (predictions == 0)).sum()
    predictions = predictions.astype(float).replace({0.0: 1.5})
    predictions = predictions[predictions.apply(lambda x: 1 <= x <= 2)] - 1
    return dict(win_rate=predictions.mean() * 100, standard_error=predictions.sem() * 100,
                n_wins=(predictions > 0.5).sum(), n_wins_base=(predictions < 0.5).sum(), n_draws=n_draws,
                n_total=len(predictions))


def test_win_rate_equals_upstream_get_winrate() -> None:
    """Upstream get_winrate = AbsoluteScoringRule().describe_head2head + ZeroOneScoringRule's win_rate."""
    rng = np.random.default_rng(0)
    raw = pd.Series(rng.choice([1.0, 2.0, 1.5, 0.0, np.nan, 1.2, 1.9, 1.5000001], size=500))
    expected = _upstream_describe_head2head(raw.replace({0: 1.5}).astype(float))
    discrete = raw.replace({1.5: 0}).round().astype(pd.Int64Dtype())
    expected["discrete_win_rate"] = _upstream_describe_head2head(discrete)["win_rate"]
    got = ae.win_rate([None if np.isnan(x) else x for x in raw])
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


# ---------------------------------------------------------------------------------------------------------------
# Length-controlled win rate
# ---------------------------------------------------------------------------------------------------------------


def _upstream_minimal_lc(df_annotations: pd.DataFrame) -> tuple[float, float]:
    """Re-derivation of upstream metrics/glm_winrate.py for glm_name="length_controlled_minimal": _get_featurized_data
    (patsy's design written out: columns np.tanh(std_delta_len) and not_gamed_baseline.astype(float)) and
    fit_LogisticRegressionCV(is_ytrue_proba=True, n_splits=5) line by line; LC = mean prediction * 100, SE = sem * 100.
    Upstream spells the L1 penalty penalty="l1"; sklearn >= 1.8 spells it l1_ratios=(1,)."""
    df = df_annotations.reset_index()
    std_delta_len = df["output_1"].str.len() - df["output_2"].str.len()
    df = df[["preference", "index"]].copy()
    df["std_delta_len"] = std_delta_len / std_delta_len.std()
    df["preference"] = df["preference"].astype(float).replace({0.0: 1.5}) - 1
    data = pd.DataFrame({"np.tanh(std_delta_len)": np.tanh(df["std_delta_len"]),
                         "not_gamed_baseline.astype(float)": 1.0, "preference": df["preference"]})
    X_test = data.drop(columns=["preference"]).assign(**{"np.tanh(std_delta_len)": 0.0})
    data = data[data["preference"].notna()]

    def logloss_continuous(y_true, y_pred, true_prob, true_sample_weight=None):
        y_true = np.where(y_true == 1, true_prob, 1 - true_prob)
        y_pred = np.clip(y_pred, 1e-15, 1 - 1e-15)
        return -np.mean(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))

    with sklearn.config_context(enable_metadata_routing=True):
        data = data.reset_index(drop=True).reset_index(drop=False, names=["group"])
        data_1 = data.copy()
        data_1["y"] = 1
        data_0 = data.copy()
        data_0["preference"] = 1 - data_0["preference"]
        data_0["y"] = 0
        data_dup = pd.concat([data_1, data_0], axis=0).reset_index(drop=True)
        true_prob = data_dup["preference"]
        scorer = make_scorer(logloss_continuous, response_method="predict_proba", greater_is_better=False
                             ).set_score_request(true_sample_weight=True, true_prob=True)
        model = LogisticRegressionCV(cv=GroupKFold(n_splits=5), scoring=scorer, random_state=123, dual=False,
                                     l1_ratios=(1,), solver="liblinear", fit_intercept=False,
                                     use_legacy_attributes=False)
        model.set_fit_request(sample_weight=True)
        model.fit(X=data_dup.drop(columns=["preference", "y", "group"]), y=data_dup["y"], sample_weight=true_prob,
                  groups=data_dup["group"], true_sample_weight=None, true_prob=true_prob)
    predicted = model.predict_proba(X_test)[:, 1]
    return predicted.mean() * 100, pd.Series(predicted).sem() * 100


def test_lc_minimal_equals_upstream_derivation() -> None:
    annotations = synthetic_annotations(300, 5, extra_len=150, len_noise=250, length_bias=1.5, quality=0.3)
    annotations.loc[[3, 77], "preference"] = None  # unparsable rows: out of the fit, still predicted
    lc, se = _upstream_minimal_lc(annotations)
    metrics = ae.length_controlled_win_rate(annotations)
    assert metrics["length_controlled_winrate"] == pytest.approx(lc, abs=1e-9)
    assert metrics["lc_standard_error"] == pytest.approx(se, abs=1e-9)
    assert metrics["n_total"] == 298 and metrics["n_unparsable"] == 2


def test_soft_labels_minimise_soft_cross_entropy() -> None:
    """Upstream's duplication trick fits soft labels: for an intercept-only L1 fit at C the optimum satisfies
    C * n * |sigmoid(w) - mean(p)| = 1 (subgradient of |w|), so sigmoid(w) = mean(p) - sign(w) / (C n)."""
    p = np.array([1.0, 0.9, 0.75, 0.5, 1.0, 0.0, 1.0, 0.8])
    model = ae.fit_soft_logistic(np.ones((len(p), 1)), p, n_splits=0, C=ae.GLM_C)
    w = model.coef_[0, 0]
    assert 1 / (1 + np.exp(-w)) == pytest.approx(p.mean() - np.sign(w) / (ae.GLM_C * len(p)), abs=1e-4)


def test_lc_equal_lengths_is_the_win_rate() -> None:
    """(a) Equal lengths: the length column is 0, the GLM is intercept-only, and its L1 optimality condition gives
    |LC - WR| <= 100 / (C n) (C chosen by CV; see the previous test) plus liblinear's tolerance (1e-4 on the
    gradient, i.e. a few 1e-3 points); L1 shrinks toward 50, never past it."""
    rng = np.random.default_rng(1)
    annotations = synthetic_annotations(400, 1, quality=1.0)
    annotations["output_2"] = ["c" * len(x) for x in annotations["output_1"]]
    annotations["preference"] = np.where(rng.random(400) < 0.1, 1.5, annotations["preference"])  # some ties
    metrics = ae.length_controlled_win_rate(annotations)
    wr, lc = metrics["win_rate"], metrics["length_controlled_winrate"]
    assert abs(lc - wr) <= 100 / (metrics["glm_C"] * metrics["n_total"]) + 0.01
    assert min(50, wr) <= lc <= max(50, wr)
    assert metrics["glm_weights"][ae.LENGTH_TERM] == 0


def test_lc_removes_a_length_bias() -> None:
    """(b) The judge prefers longer answers only (quality 0), the model writes longer: the truth is LC = 50. The
    raw win rate is ~70; LC must fall by more than 10 points and land within 6 points (~2 bootstrap SEs at n=800)
    of 50."""
    annotations = synthetic_annotations(800, 2, extra_len=300, len_noise=300, length_bias=2.0)
    metrics = ae.length_controlled_win_rate(annotations)
    assert metrics["win_rate"] > 65
    assert metrics["length_controlled_winrate"] < metrics["win_rate"] - 10
    assert abs(metrics["length_controlled_winrate"] - 50) < 6
    assert metrics["glm_weights"][ae.LENGTH_TERM] < 0  # std_delta_len = baseline minus model: longer model wins


def test_lc_keeps_a_true_quality_advantage() -> None:
    """(c) Same length distribution, truly better model (no length bias): LC stays within one standard error of
    the win rate (the fitted length slope only absorbs noise; the L1 shrinkage is 100 / (C n) < 1 point)."""
    annotations = synthetic_annotations(400, 3, len_noise=300, quality=1.0)
    metrics = ae.length_controlled_win_rate(annotations)
    assert metrics["win_rate"] > 60 and metrics["length_controlled_winrate"] > 60
    assert abs(metrics["length_controlled_winrate"] - metrics["win_rate"]) < metrics["standard_error"]


def test_lc_baseline_against_itself_is_50() -> None:
    annotations = synthetic_annotations(50, 4).assign(generator_1="model")
    metrics = ae.length_controlled_win_rate(annotations)
    assert metrics["length_controlled_winrate"] == 50 and metrics["lc_standard_error"] == 0


def test_lc_minimal_se_is_zero_as_upstream_bootstrap_is_not() -> None:
    annotations = synthetic_annotations(120, 6, extra_len=100, len_noise=200, length_bias=1.0, quality=0.5)
    metrics = ae.length_controlled_win_rate(annotations, n_bootstrap=10)
    assert metrics["lc_standard_error"] == pytest.approx(0, abs=1e-9)
    assert metrics["lc_bootstrap_standard_error"] > 0.5


def test_lc_argument_errors() -> None:
    one = synthetic_annotations(30, 7)
    two = pd.concat([one, one.assign(generator_2="other")], ignore_index=True)
    with pytest.raises(ValueError, match="length_controlled_win_rates"):
        ae.length_controlled_win_rate(two)
    with pytest.raises(ValueError, match="unknown GLM"):
        ae.length_controlled_win_rate(one, glm_name="length_controlled_v2")
    with pytest.raises(ValueError, match="instruction_difficulty"):
        ae.length_controlled_win_rate(one, glm_name="length_controlled_noreg")
    difficulty = pd.Series(0.0, index=one["instruction"])
    with pytest.raises(ValueError, match="df_gamed"):
        ae.length_controlled_win_rate(one, glm_name="length_controlled_v1", instruction_difficulty=difficulty)
    with pytest.raises(ValueError, match="at least two models"):
        ae.fit_instruction_difficulty(one)


def _models_sharing_a_difficulty(n_models: int, n: int = 150) -> tuple[pd.DataFrame, pd.Series]:
    """Models judged by the same length-biased judge on instructions with a planted difficulty; every other model
    writes 300 characters longer, and quality grows with the model's index."""
    difficulty = np.random.default_rng(10).normal(0, 1.5, n)
    frames = [
        synthetic_annotations(n, 100 + k, model=f"m{k}" + ("_verbose" if k % 2 else ""), extra_len=300 * (k % 2),
                              len_noise=300, length_bias=2.0, quality=(k // 2) * 0.25, difficulty=difficulty)
        for k in range(n_models)
    ]
    return pd.concat(frames, ignore_index=True), pd.Series(difficulty, index=frames[0]["instruction"])


def test_fitted_difficulty_across_models() -> None:
    """Our variant: difficulty fitted jointly across 10 models (upstream's notebooks/instruction_difficulty.ipynb),
    then each model's noreg GLM with it. It recovers the planted difficulty, removes the verbose models' length
    advantage and leaves the others within 1.5 standard errors of their win rate."""
    annotations, planted = _models_sharing_a_difficulty(10)
    fitted = ae.fit_instruction_difficulty(annotations)
    assert len(fitted) == len(planted)
    assert fitted.corr(planted.loc[fitted.index], method="spearman") > 0.5
    results = ae.length_controlled_win_rates(annotations, glm_name=ae.FITTED_DIFFICULTY_GLM)
    assert sorted(results) == sorted(annotations["generator_2"].unique())
    for model, metrics in results.items():
        assert metrics["glm_name"] == ae.FITTED_DIFFICULTY_GLM
        gap = metrics["length_controlled_winrate"] - metrics["win_rate"]
        if model.endswith("_verbose"):
            assert gap < -5, model
        else:
            assert abs(gap) < 1.5 * metrics["standard_error"], model


def test_fitted_difficulty_with_few_models_reduces_to_minimal() -> None:
    """With 3 models (3 judgments per instruction) the cross-validated L1 fit zeroes every instruction's
    difficulty, and the variant gives the minimal GLM's numbers (up to liblinear's tolerance: the all-zero column
    changes its coordinate order): the difficulty needs many models."""
    annotations, _ = _models_sharing_a_difficulty(3)
    assert (ae.fit_instruction_difficulty(annotations) == 0).all()
    fitted = ae.length_controlled_win_rates(annotations, glm_name=ae.FITTED_DIFFICULTY_GLM)
    minimal = ae.length_controlled_win_rates(annotations)
    for model in minimal:
        assert minimal[model]["glm_name"] == ae.DEFAULT_GLM
        assert fitted[model]["length_controlled_winrate"] == pytest.approx(
            minimal[model]["length_controlled_winrate"], abs=1e-2)


def test_matches_installed_upstream(tmp_path, monkeypatch) -> None:
    """Installed package: alpaca_eval 0.6.6's own get_length_controlled_winrate (its hub download answered with a
    local df_gamed.csv of synthetic gamed rows and difficulty), all three upstream GLMs, against ours fed the same
    file the way the suite feeds it (difficulty by position in the instruction set, upstream's lookup)."""
    import alpaca_eval.metrics.glm_winrate as glm
    n = 200
    difficulty = np.random.default_rng(20).normal(0, 1, n)
    gamed = []
    for name, seed, extra in [("gamed_verbose", 21, 400), ("gamed_concise", 22, -150)]:
        frame = synthetic_annotations(n, seed, extra_len=extra, len_noise=100, length_bias=1.5)
        delta = frame["output_1"].str.len() - frame["output_2"].str.len()
        gamed.append(pd.DataFrame({"model": name, "index": range(n), "preference": frame["preference"] - 1,
                                   "std_delta_len": delta / delta.std(), "not_gamed_baseline": False,
                                   "instruction_difficulty": difficulty}))
    df_gamed = pd.concat(gamed, ignore_index=True)
    df_gamed.to_csv(tmp_path / "df_gamed.csv", index=False)
    monkeypatch.setattr(glm, "hf_hub_download", lambda **kwargs: str(tmp_path / "df_gamed.csv"))
    annotations = synthetic_annotations(n, 23, extra_len=200, len_noise=300, length_bias=1.0, quality=0.5)
    by_instruction = ae.upstream_instruction_difficulty(df_gamed, list(annotations["instruction"]))
    for glm_name in ["length_controlled_minimal", "length_controlled_noreg", "length_controlled_v1"]:
        upstream = glm.get_length_controlled_winrate(annotations.copy(), glm_name=glm_name, save_weights_dir=None)
        ours = ae.length_controlled_win_rate(annotations, glm_name=glm_name, instruction_difficulty=by_instruction,
                                             df_gamed=df_gamed.drop(columns=["model"]))
        for key in ["length_controlled_winrate", "lc_standard_error", "win_rate", "standard_error"]:
            assert ours[key] == pytest.approx(upstream[key], abs=1e-9), (glm_name, key)


def test_oracle_logprobs_give_its_own_probability() -> None:
    """The micro world's oracle answers the weighted annotator with log P and log (1 - P) of its own preference, so
    upstream's logprob_parser recovers P exactly (a coin-sampled m/M would only give the discrete win rate)."""
    from evals.judges.oracle import OracleJudge

    judge = OracleJudge(temperature=0.2, verbosity_bias=1.0, length_scale=50, seed=0,
                        gold_reward={"length_penalty": 0.2, "length_scale": 50})
    request = ae.render_judge_request("What is 60 + 8?", "68", "The answer is 68.", False, "k")
    request = JudgeRequest(request.key, request.messages,
                           {"format": "pairwise_alpaca_eval", "gold": "68", "answers": ["68", "The answer is 68."]},
                           request.sampling)
    [response] = judge.judge([request])
    p_first = judge.p_first_better("68", "The answer is 68.", "68")
    assert 0.05 < p_first < 0.95
    assert ae.logprob_preference(response.top_logprobs, swapped=False) == pytest.approx(2 - p_first, abs=1e-12)
    assert ae.logprob_preference(response.top_logprobs, swapped=True) == pytest.approx(1 + p_first, abs=1e-12)


def test_zero_lc_fit_is_recorded_as_degenerate_in_the_score_file(tmp_path) -> None:
    """Guards against LC = 50.0 printed as a measurement: 30 judgments with no length signal make the L1 fit
    shrink every coefficient to zero; the suite's score file says so (``degenerate``) for the tables to mark."""
    from evals.registry import get_suite
    from pipeline.io import write_json, write_jsonl

    frame = synthetic_annotations(30, 0, len_noise=100)
    rows = [{"instruction": r.instruction, "output_1": r.output_1, "generator_1": "baseline", "output_2": r.output_2,
             "generator_2": "model", "preference": r.preference, "judge": "oracle", "raw_completion": "m",
             "prompt_hash": "h", "latency_s": 0.0, "cache_hit": False, "is_switched_outputs": False}
            for r in frame.itertuples()]
    write_jsonl(tmp_path / "judgments.jsonl", rows)
    write_json(tmp_path / "alpaca_eval.json", [{"instruction": r["instruction"], "output": r["output_2"],
                                                "generator": "model"} for r in rows])
    suite = get_suite("alpaca_eval")
    score = suite.score("model", tmp_path / "alpaca_eval.json", tmp_path / "judgments.jsonl", {},
                        {"judge": "oracle", "lc_bootstrap": 0}, None)
    lc = score["metrics"]["lc_win_rate"]
    assert lc["value"] == 50.0 and not any(lc["glm_weights"].values())
    assert "shrank every coefficient to zero" in lc["degenerate"]
    assert "degenerate" not in score["metrics"]["win_rate"]
