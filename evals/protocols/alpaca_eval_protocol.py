"""AlpacaEval 2 (alpaca_eval 0.6.6): judge prompt, logprob preference, win rate, LC win rate.

Upstream: tatsu-lab/alpaca_eval @ v0.6.6 = f19c323d8309d0d6f306bd26597db44fc6c62d57, installed as our dependency
``alpaca-eval==0.6.6`` (see ``templates/alpaca_eval/SOURCE.md``). Annotator: ``weighted_alpaca_eval_gpt4_turbo``,
AlpacaEval 2's default. Taken from the installed package, not copied: the prompt template and the annotator's
``configs.yaml`` (its judge call: max_tokens 1, logprobs, top_logprobs 5), ``completion_parsers.logprob_parser``
(preference = 2 - P(m) / (P(m) + P(M)), continuous) and ``metrics.winrate.get_winrate``. Ours: the order coin
(upstream's ``RandomSwitchTwoColumnsProcessor`` as one function; tested against the package) and the GLM fits,
because upstream's ``glm_winrate`` downloads ``df_gamed.csv`` from the Hugging Face hub on every call: we take that
file from the data stage instead (``length_controlled_v1``) and check the fit against the package's own function.

Conventions (upstream's): ``output_1`` is the baseline (``generator_1``), ``output_2`` the model being evaluated
(``generator_2``); ``preference`` is 1 when the baseline wins, 2 when the model wins, 1.5 (or legacy 0) for a tie,
anything in between a soft preference, NaN/None when the judge's answer could not be parsed. The judge sees the two
outputs in an order given by a seeded coin on the instruction (``is_switched``); the preference is mapped back with
``3 - x``, so stored preferences always refer to (output_1, output_2). Identical outputs are a tie (1.5) without a
judge call (upstream's ``PairwiseAnnotator._preprocess``).

Example::

    swapped = is_switched(instruction)
    request = render_judge_request(instruction, baseline_output, model_output, swapped, key="alpaca_eval/17")
    response = judge.judge([request])[0]        # the request carries upstream's logprob sampling parameters
    row = annotation_record(instruction, baseline_output, model_output, "gpt4_1106_preview", "dpo",
                            swapped, response)
    length_controlled_win_rate(pandas.DataFrame(rows))           # LC minimal + the raw win rate
"""

from __future__ import annotations

import importlib.util
import random
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from evals.judges.base import JudgeRequest, JudgeResponse

if TYPE_CHECKING:  # scipy and scikit-learn load inside the fits: judging needs neither (~1.5 s of imports)
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

UPSTREAM_REPO = "tatsu-lab/alpaca_eval"
UPSTREAM_VERSION = "0.6.6"
UPSTREAM_COMMIT = "f19c323d8309d0d6f306bd26597db44fc6c62d57"

TEMPLATE_DIR = Path(__file__).parent.parent / "templates" / "alpaca_eval"   # SOURCE.md only
ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
# The installed package's evaluators_configs/<annotator>/configs.yaml and its prompt_template.
UPSTREAM_CONFIGS_DIR = Path(importlib.util.find_spec("alpaca_eval").submodule_search_locations[0]) / \
    "evaluators_configs"


@lru_cache(maxsize=None)
def annotator_config(annotator: str = ANNOTATOR) -> dict[str, Any]:
    """The installed alpaca_eval's ``evaluators_configs/<annotator>/configs.yaml`` block for ``annotator``."""
    import yaml

    return yaml.safe_load((UPSTREAM_CONFIGS_DIR / annotator / "configs.yaml").read_text())[annotator]


TEMPLATE_FILE = UPSTREAM_CONFIGS_DIR / annotator_config()["prompt_template"]
# The judge call's parameters (max_tokens 1, temperature 1, logprobs, top_logprobs 5), without the model name:
# the judge is the config's; its model is named in every caption.
UPSTREAM_JUDGE_MODEL = annotator_config()["completions_kwargs"]["model_name"]
UPSTREAM_COMPLETIONS_KWARGS = {k: v for k, v in annotator_config()["completions_kwargs"].items() if k != "model_name"}
PARSER_KWARGS = annotator_config()["completion_parser_kwargs"]
# logprob_parser's numerator "m" = the first-shown output wins.
FIRST_OUTPUT_ID = PARSER_KWARGS["numerator_token"]
SECOND_OUTPUT_ID = next(t for t in PARSER_KWARGS["denominator_tokens"] if t != FIRST_OUTPUT_ID)

# utils.prompt_to_chatml
CHATML_START = "<|im_start|>"
CHATML_END = "<|im_end|>"
# utils.make_prompts: placeholders are "{name}" with no whitespace inside.
PLACEHOLDER = re.compile(r"{([^ \s]+?)}")

# Preference encoding (completion_parsers.py docstring, metrics/helpers.py).
PREFERENCE_BASELINE = 1.0
PREFERENCE_MODEL = 2.0
PREFERENCE_TIE = 1.5
LEGACY_TIE = 0.0

# annotators/pairwise_evaluator.py: RandomSwitchTwoColumnsProcessor(_switch_column="is_switched_outputs",
# random_seed_columns=["instruction"]); the processor's seed is the annotator's, BaseAnnotator(seed=0).
SWITCH_COLUMN = "is_switched_outputs"
DEFAULT_SWITCH_SEED = 0

# metrics/glm_winrate.py: design-matrix column names (patsy's names for the formula terms).
LENGTH_TERM = "np.tanh(std_delta_len)"
DIFFICULTY_TERM = "instruction_difficulty"
NOT_GAMED_TERM = "not_gamed_baseline.astype(float)"

# metrics/glm_winrate.py GLM_INFO, plus our variant (last entry): upstream's `length_controlled_noreg` formula with
# the instruction difficulty fitted by us across the models passed in, as upstream's
# notebooks/instruction_difficulty.ipynb does across its leaderboard.
DEFAULT_GLM = "length_controlled_minimal"
FITTED_DIFFICULTY_GLM = "length_controlled_fitted_difficulty"
GLM_INFO: dict[str, dict[str, Any]] = {
    "length_controlled_v1": {
        "formula": "np.tanh(std_delta_len) + instruction_difficulty + not_gamed_baseline.astype(float) - 1",
        "terms": (LENGTH_TERM, DIFFICULTY_TERM, NOT_GAMED_TERM),
        "regularize_to_baseline_lambda": 0.2,
    },
    "length_controlled_noreg": {
        "formula": "np.tanh(std_delta_len) + instruction_difficulty + not_gamed_baseline.astype(float) - 1",
        "terms": (LENGTH_TERM, DIFFICULTY_TERM, NOT_GAMED_TERM),
        "regularize_to_baseline_lambda": None,
    },
    "length_controlled_minimal": {
        "formula": "np.tanh(std_delta_len) + not_gamed_baseline.astype(float) - 1",
        "terms": (LENGTH_TERM, NOT_GAMED_TERM),
        "regularize_to_baseline_lambda": None,
    },
    FITTED_DIFFICULTY_GLM: {
        "formula": "np.tanh(std_delta_len) + instruction_difficulty + not_gamed_baseline.astype(float) - 1",
        "terms": (LENGTH_TERM, DIFFICULTY_TERM, NOT_GAMED_TERM),
        "regularize_to_baseline_lambda": None,
    },
}
# metrics/glm_winrate.py fit_LogisticRegressionCV: signature defaults and dflt_kwargs.
GLM_N_SPLITS = 5
GLM_C = 100.0
GLM_RANDOM_STATE = 123
GLM_SOLVER = "liblinear"
# sklearn's LogisticRegressionCV default grid (upstream does not set Cs): 10 values, logspace(-4, 4).
GLM_CS = 10
# metrics/glm_winrate.py logloss: probabilities are clipped to [eps, 1 - eps].
LOGLOSS_EPS = 1e-15


# ----------------------------------------------------------------------------------------------------------------
# Judge prompt
# ----------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def load_template(path: str | Path = TEMPLATE_FILE) -> str:
    """The upstream prompt template, a ChatML text with ``{instruction}``, ``{output_1}``, ``{output_2}``."""
    return Path(path).read_text(encoding="utf-8")


def chatml_to_messages(prompt: str) -> list[dict[str, str]]:
    """Upstream ``utils.prompt_to_chatml``: split a ChatML text into ``{role, content}`` messages (stripped)."""
    prompt = prompt.strip()
    if not (prompt.startswith(CHATML_START) and prompt.endswith(CHATML_END)):
        raise ValueError("not a ChatML prompt")
    messages = []
    for block in prompt.split(CHATML_START)[1:]:
        role, _, rest = block.partition("\n")
        messages.append({"role": role.strip(), "content": rest.split(CHATML_END, 1)[0].strip()})
    return messages


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """Replace each ``{name}`` of ``values`` in one pass (upstream ``make_prompts`` replaces them one after the
    other, so a placeholder written inside an earlier value would be filled too; one pass never re-reads values)."""
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def is_switched(instruction: str, seed: int = DEFAULT_SWITCH_SEED) -> bool:
    """Whether the judge sees the pair swapped (model's output first): upstream's seeded coin on the instruction,
    ``random.Random("is_switched_outputs" + instruction + str(seed)).choices([False, True], k=1)[0]``."""
    return random.Random(SWITCH_COLUMN + instruction + str(seed)).choices([False, True], k=1)[0]


def render_judge_request(
    instruction: str,
    output_1: str,
    output_2: str,
    swapped: bool,
    key: str,
    item: Mapping[str, Any] | None = None,
) -> JudgeRequest:
    """The judge call for one pair: upstream's system and user messages with the outputs in the shown order.

    ``output_1`` is the baseline's, ``output_2`` the model's; when ``swapped`` the judge sees ``output_2`` first
    (as identifier ``m``). ``item`` (e.g. the gold item of the micro world) is passed to the oracle only.
    """
    shown = (output_2, output_1) if swapped else (output_1, output_2)
    values = {"instruction": instruction, "output_1": shown[0], "output_2": shown[1]}
    filled = [{**m, "content": fill_placeholders(m["content"], values)} for m in chatml_to_messages(load_template())]
    oracle = {
        "suite": "alpaca_eval",
        "output_format": f"{FIRST_OUTPUT_ID} or {SECOND_OUTPUT_ID}",
        "instruction": instruction,
        "shown_outputs": {FIRST_OUTPUT_ID: shown[0], SECOND_OUTPUT_ID: shown[1]},
        "swapped": swapped,
        "item": dict(item) if item is not None else None,
    }
    return JudgeRequest(key=key, messages=filled, oracle=oracle, sampling=dict(UPSTREAM_COMPLETIONS_KWARGS))


# ----------------------------------------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------------------------------------

# The whole answer is one identifier, possibly wrapped in whitespace or punctuation ("M", " m\n", "**M**", '"m".').
_VERDICT = re.compile(r"[\W_]*(m|M)[\W_]*")


def parse_verdict(text: str | None) -> str | None:
    """The model identifier the judge answered (``"m"`` or ``"M"``), or None when the text is anything else.

    Upstream asks for exactly one identifier and reads the first token's logprobs (``max_tokens=1``); from text we
    accept only an answer that is that identifier alone, so "Model M", "m or M" or an explanation are unparsable.
    """
    match = _VERDICT.fullmatch(text or "")
    return match.group(1) if match else None


def parse_preference(text: str | None, swapped: bool) -> float | None:
    """The discrete preference from the judge's text (upstream's ``logprob_parser`` with ``is_binarize``, the
    annotator's ``discrete`` reading): 1.0 = output_1 (baseline), 2.0 = output_2 (model), mapped back with
    ``3 - x`` when the pair was shown swapped; None when unparsable. Kept for the ``discrete`` column only: the
    score's preference is ``logprob_preference``."""
    verdict = parse_verdict(text)
    if verdict is None:
        return None
    shown_preference = PREFERENCE_BASELINE if verdict == FIRST_OUTPUT_ID else PREFERENCE_MODEL
    return 3.0 - shown_preference if swapped else shown_preference


def logprob_preference(top_logprobs: Sequence[Mapping[str, Any]] | None, swapped: bool) -> float | None:
    """Upstream's weighted preference: alpaca_eval's own ``logprob_parser`` (``numerator_token="m"``,
    ``denominator_tokens=["m", "M"]``, ``is_binarize=False``) on the first token's ``top_logprobs``, i.e.
    ``2 - P(m) / (P(m) + P(M))`` in the shown order, mapped back with ``3 - x`` when swapped (the processor's
    postprocess). None when neither ``m`` nor ``M`` is among the top logprobs (upstream: NaN, dropped)."""
    from alpaca_eval.completion_parsers import logprob_parser

    tokens = {FIRST_OUTPUT_ID, SECOND_OUTPUT_ID}
    if not any(t["token"] in tokens for t in top_logprobs or ()):
        return None   # upstream: NaN (after logging the whole completion as a warning)
    completion = {"logprobs": {"content": [{"top_logprobs": [dict(t) for t in top_logprobs]}]}}
    shown = float(logprob_parser(completion, **PARSER_KWARGS)[0])
    return 3.0 - shown if swapped else shown


def annotation_record(
    instruction: str,
    output_1: str,
    output_2: str,
    generator_1: str,
    generator_2: str,
    swapped: bool,
    response: JudgeResponse | None,
) -> dict[str, Any]:
    """One judgment row: upstream's annotation fields (``annotations.json``) plus our judge bookkeeping.

    ``preference`` is the weighted (logprob) preference; ``preference_discrete`` the judge's sampled token read
    as 1 or 2. ``response`` None: identical outputs, a tie (1.5) without a judge call, as upstream. A response
    without logprobs is an error (the weighted annotator needs them; the judge was asked for them). The row is
    kept with preference None when neither identifier is among the top logprobs, and excluded from the scores.
    """
    row = {"instruction": instruction, "output_1": output_1, "generator_1": generator_1, "output_2": output_2,
           "generator_2": generator_2, "annotator": ANNOTATOR, "is_switched_outputs": swapped}
    if response is None:
        if output_1 != output_2:
            raise ValueError(f"only identical outputs are scored without a judge call: {instruction[:80]!r}")
        return {**row, "judge": "none (identical outputs)", "raw_completion": "", "preference": PREFERENCE_TIE,
                "preference_discrete": PREFERENCE_TIE, "top_logprobs": None, "key": "", "prompt_hash": "",
                "latency_s": 0.0, "cache_hit": False}
    if response.top_logprobs is None:
        raise ValueError(f"judge {response.judge_id!r} answered {response.key!r} without logprobs: AlpacaEval's "
                         f"{ANNOTATOR} needs the first token's top_logprobs (an OpenAI-compatible endpoint that "
                         f"supports `logprobs`)")
    return {
        **row,
        "judge": response.judge_id,
        "raw_completion": response.text,
        "preference": logprob_preference(response.top_logprobs, swapped),
        "preference_discrete": parse_preference(response.text, swapped),
        "top_logprobs": response.top_logprobs,
        "key": response.key,
        "prompt_hash": response.prompt_hash,
        "latency_s": response.latency_s,
        "cache_hit": response.cache_hit,
    }


# ----------------------------------------------------------------------------------------------------------------
# Win rate (metrics/winrate.py get_winrate, metrics/helpers.py describe_head2head)
# ----------------------------------------------------------------------------------------------------------------


def _as_preferences(preferences: Sequence[float | None] | pd.Series) -> pd.Series:
    """Preferences as floats, None -> NaN, legacy tie 0 -> 1.5 (``BaseScoringRule.preprocess_predictions``)."""
    values = pd.Series([np.nan if p is None else p for p in preferences], dtype=float)
    return values.replace({LEGACY_TIE: PREFERENCE_TIE})


def win_rate(preferences: Sequence[float | None] | pd.Series) -> dict[str, float | int]:
    """alpaca_eval's own ``metrics.winrate.get_winrate``: the ``AbsoluteScoringRule`` head-to-head (soft
    preferences count as they are, a tie as half a win) plus ``discrete_win_rate`` (``ZeroOneScoringRule``: ties
    kept, others rounded to 1 or 2), as plain floats and ints.

    Percentages: ``win_rate``, ``standard_error`` (sample sd / sqrt(n), in percent), ``discrete_win_rate``.
    Counts: ``n_wins``, ``n_wins_base``, ``n_draws``, ``n_total`` (parsed rows only). Ours, beyond upstream:
    ``n_unparsable`` (None/NaN preferences, excluded from everything else).
    """
    from alpaca_eval.metrics.winrate import get_winrate

    values = _as_preferences(preferences)
    parsed = values.dropna().reset_index(drop=True)
    metrics = {k: (int(v) if k.startswith("n_") else float(v))
               for k, v in get_winrate(pd.DataFrame({"preference": parsed})).items()}
    metrics["n_unparsable"] = int(values.isna().sum())
    return metrics


# ----------------------------------------------------------------------------------------------------------------
# Length-controlled win rate (metrics/glm_winrate.py)
# Hand-written: upstream's get_length_controlled_winrate downloads df_gamed.csv from the Hugging Face hub on every
# call (even for the `minimal` GLM) and builds its design matrix with patsy; this is the same fit, offline.
# ----------------------------------------------------------------------------------------------------------------


def std_delta_len(output_1: pd.Series, output_2: pd.Series) -> pd.Series:
    """Upstream ``std_delta_len``: (len(output_1) - len(output_2)) in characters over its sample sd (ddof 1).

    Where that sd is 0 or undefined (all length differences equal, or one row) there is no length information and
    the feature is 0; upstream would divide by zero and patsy would drop every row.
    """
    delta = (output_1.astype(str).str.len() - output_2.astype(str).str.len()).astype(float)
    std = delta.std()
    if not np.isfinite(std) or std == 0:
        return delta * 0.0
    return delta / std


def _logloss(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Upstream ``logloss``: mean (optionally weighted) binary cross-entropy with soft targets."""
    y_pred = np.clip(y_pred, LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    losses = y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred)
    if sample_weight is not None:
        losses = losses * sample_weight
    return float(-np.mean(losses))


def _logloss_continuous(
    y_true: np.ndarray, y_pred: np.ndarray, true_prob: np.ndarray, true_sample_weight: np.ndarray | None = None
) -> float:
    """Upstream ``logloss_continuous``: undo the duplication (label 1 row carries p, label 0 row carries 1 - p)."""
    y_soft = np.where(np.asarray(y_true) == 1, true_prob, 1 - np.asarray(true_prob))
    return _logloss(y_soft, y_pred, sample_weight=true_sample_weight)


def _soft_logloss_scorer():
    """``make_scorer(_logloss_continuous, response_method="predict_proba", greater_is_better=False)``, scoring each
    (fold, C) of the CV as sklearn's binary ``LogisticRegression.predict_proba`` computes P(label 1) (``expit(X @
    coef.T + intercept)``, the same operations) without the input checks sklearn's scorer and ``predict_proba`` make on
    every call: the same numbers, and most of the time of an LC win rate with a bootstrap was spent in those checks
    (10 Cs x 5 folds x 51 fits = 2550 calls for ``lc_bootstrap: 50``)."""
    from scipy.special import expit
    from sklearn.metrics._scorer import _Scorer

    class SoftLoglossScorer(_Scorer):
        def _score(self, method_caller, estimator, X, y_true, **kwargs):
            coef = estimator.coef_
            scores = X @ (coef.T if coef.ndim == 2 else coef) + estimator.intercept_
            if scores.ndim > 1 and scores.shape[1] == 1:
                scores = scores.reshape(-1)
            return self._sign * self._score_func(y_true, expit(scores), **{**self._kwargs, **kwargs})

    return SoftLoglossScorer(_logloss_continuous, -1, {}, "predict_proba")


def fit_soft_logistic(
    X: np.ndarray | sp.spmatrix,
    p: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    n_splits: int = GLM_N_SPLITS,
    C: float = GLM_C,
    Cs: int | Sequence[float] = GLM_CS,
    random_state: int = GLM_RANDOM_STATE,
) -> LogisticRegression:
    """Upstream ``fit_LogisticRegressionCV(..., is_ytrue_proba=True)``: L1 logistic regression on soft labels.

    Each row is duplicated, once with label 1 and weight ``p * w``, once with label 0 and weight ``(1 - p) * w``
    (``w`` = ``sample_weight`` or 1), which minimises the soft cross-entropy. With ``n_splits > 0`` the penalty is
    chosen by ``LogisticRegressionCV`` over ``Cs`` with ``GroupKFold`` (both copies of a row in one fold) scored by
    the soft log loss; with ``n_splits == 0`` a plain fit at ``C``. liblinear, no intercept, as upstream.
    """
    import scipy.sparse as sp
    import sklearn
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import GroupKFold

    n = X.shape[0]
    X_dup = sp.vstack([X, X], format="csr") if sp.issparse(X) else np.vstack([X, X])
    y = np.r_[np.ones(n), np.zeros(n)]
    true_prob = np.r_[p, 1 - p].astype(float)
    true_sample_weight = None if sample_weight is None else np.r_[sample_weight, sample_weight].astype(float)
    fit_weight = true_prob if true_sample_weight is None else true_prob * true_sample_weight
    common = dict(solver=GLM_SOLVER, fit_intercept=False, dual=False, random_state=random_state)
    with sklearn.config_context(enable_metadata_routing=True):
        if n_splits > 0:
            scorer = _soft_logloss_scorer().set_score_request(true_prob=True, true_sample_weight=True)
            model = LogisticRegressionCV(
                Cs=Cs, cv=GroupKFold(n_splits=n_splits), scoring=scorer, l1_ratios=(1.0,),
                use_legacy_attributes=False, **common,
            )
            model.set_fit_request(sample_weight=True)
            model.fit(X_dup, y, sample_weight=fit_weight, groups=np.tile(np.arange(n), 2), true_prob=true_prob,
                      true_sample_weight=true_sample_weight)
        else:
            model = LogisticRegression(C=C, l1_ratio=1.0, **common)
            model.fit(X_dup, y, sample_weight=fit_weight)
    return model


def _check_annotations(annotations: pd.DataFrame) -> None:
    """Raise unless the frame has the columns the GLMs read."""
    missing = {"instruction", "output_1", "output_2", "preference", "generator_2"} - set(annotations.columns)
    if missing:
        raise ValueError(f"annotations lack columns {sorted(missing)}")


def _glm_info(glm_name: str) -> dict[str, Any]:
    """The GLM's formula terms and regularisation; an unknown name raises with the valid names."""
    if glm_name not in GLM_INFO:
        raise ValueError(f"unknown GLM {glm_name!r}; valid: {sorted(GLM_INFO)}")
    return GLM_INFO[glm_name]


def _difficulty_per_row(instructions: pd.Series, instruction_difficulty: pd.Series | None) -> pd.Series:
    """Each row's instruction difficulty (``instruction_difficulty`` is indexed by instruction text)."""
    if instruction_difficulty is None:
        raise ValueError("this GLM needs instruction_difficulty (a Series indexed by instruction)")
    missing = set(instructions) - set(instruction_difficulty.index)
    if missing:
        raise ValueError(f"no instruction difficulty for {len(missing)} instruction(s), e.g. {sorted(missing)[:1]}")
    return instructions.map(instruction_difficulty).astype(float)


def glm_features(
    annotations: pd.DataFrame, terms: Sequence[str], instruction_difficulty: pd.Series | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Upstream ``_get_featurized_data`` (without the gamed rows): the training design (one row per annotation,
    columns named as patsy names the formula terms) and the prediction design, which is the same with the length
    term set to 0 ("what if both outputs had the same length")."""
    train = pd.DataFrame(index=annotations.index)
    for term in terms:
        if term == LENGTH_TERM:
            train[term] = np.tanh(std_delta_len(annotations["output_1"], annotations["output_2"]))
        elif term == DIFFICULTY_TERM:
            train[term] = _difficulty_per_row(annotations["instruction"], instruction_difficulty)
        elif term == NOT_GAMED_TERM:
            train[term] = 1.0
    test = train.copy()
    if LENGTH_TERM in test:
        test[LENGTH_TERM] = 0.0
    return train, test


def _gamed_rows(df_gamed: pd.DataFrame, terms: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The design and soft labels of upstream's ``df_gamed.csv`` (columns ``preference`` in [0, 1],
    ``std_delta_len``, ``instruction_difficulty``, ``not_gamed_baseline``)."""
    design = pd.DataFrame(
        {
            LENGTH_TERM: np.tanh(df_gamed["std_delta_len"].astype(float)),
            DIFFICULTY_TERM: df_gamed["instruction_difficulty"].astype(float),
            NOT_GAMED_TERM: df_gamed["not_gamed_baseline"].astype(float),
        }
    )[list(terms)]
    return design, df_gamed["preference"].astype(float).to_numpy()


def upstream_instruction_difficulty(df_gamed: pd.DataFrame, instructions: Sequence[str]) -> pd.Series:
    """The instruction difficulty upstream's ``_get_featurized_data`` uses, indexed by instruction text.

    Upstream: ``instruction_difficulty = df_gamed.drop_duplicates("index")["instruction_difficulty"]``, then row
    ``g`` of the annotations (AlpacaEval's instructions in their order) gets ``instruction_difficulty[g]``.
    ``instructions``: AlpacaEval's instructions in upstream's order (our baseline file's order)."""
    missing = {"index", "instruction_difficulty", "preference", "std_delta_len", "not_gamed_baseline"} - set(
        df_gamed.columns)
    if missing:
        raise ValueError(f"df_gamed lacks columns {sorted(missing)}")
    by_position = df_gamed.drop_duplicates("index")["instruction_difficulty"]
    if len(set(instructions)) != len(instructions):
        raise ValueError("the instructions are not unique")
    return pd.Series([float(by_position[g]) for g in range(len(instructions))], index=pd.Index(instructions),
                     name=DIFFICULTY_TERM)


def _soft_labels(preferences: pd.Series) -> pd.Series:
    """Preferences mapped to [0, 1] (P(model wins)), ties 0 -> 0.5, unparsable -> NaN (upstream: ``- 1``)."""
    return _as_preferences(preferences.tolist()).set_axis(preferences.index) - 1


def _fit_glm(
    annotations: pd.DataFrame,
    info: Mapping[str, Any],
    instruction_difficulty: pd.Series | None,
    df_gamed: pd.DataFrame | None,
    regularize_to_baseline_lambda: float | None,
    fit_kwargs: Mapping[str, Any],
) -> tuple[np.ndarray, dict[str, float], float]:
    """Fit one model's GLM and predict each row with the length term zeroed.

    Returns (predicted P(model wins) per annotation row, weights by term, chosen C). As upstream, rows with an
    unparsable preference are left out of the fit but predicted (the average runs over all instructions).
    With ``regularize_to_baseline_lambda``, the gamed rows join the fit with weight lambda / 2 (upstream: "divided
    by 2 because there are two gamed baselines") and the model's rows weight 1.
    """
    terms = info["terms"]
    train, test = glm_features(annotations, terms, instruction_difficulty)
    labels = _soft_labels(annotations["preference"])
    keep = labels.notna().to_numpy()
    X, p, weight = train.to_numpy()[keep], labels.to_numpy()[keep], None
    if regularize_to_baseline_lambda:
        if df_gamed is None:
            raise ValueError("this GLM regularises to the gamed baselines: pass df_gamed (upstream's df_gamed.csv)")
        X_gamed, p_gamed = _gamed_rows(df_gamed, terms)
        weight = np.r_[np.full(len(X_gamed), regularize_to_baseline_lambda / 2), np.ones(len(X))]
        X, p = np.vstack([X_gamed.to_numpy(), X]), np.r_[p_gamed, p]
    if len(p) == 0:
        return np.full(len(annotations), np.nan), {t: np.nan for t in terms}, np.nan
    model = fit_soft_logistic(X, p, weight, **fit_kwargs)
    weights = dict(zip(terms, map(float, model.coef_[0])))
    chosen_C = float(np.ravel(model.C_)[0]) if hasattr(model, "C_") else float(model.C)
    return model.predict_proba(test.to_numpy())[:, 1], weights, chosen_C


def _bootstrap_lc(
    annotations: pd.DataFrame, fit: Callable[[pd.DataFrame], tuple[np.ndarray, Any, Any]], n_bootstrap: int, seed: int
) -> float:
    """Sample sd of the LC win rate over ``n_bootstrap`` resamples of the annotation rows, each refitted (ours).
    ``fit`` refits at the penalty the full data chose (no cross-validation per resample: 50x fewer fits)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_bootstrap):
        sample = annotations.iloc[rng.integers(0, len(annotations), len(annotations))].reset_index(drop=True)
        values.append(np.nanmean(fit(sample)[0]) * 100)
    return float(np.std(values, ddof=1)) if n_bootstrap > 1 else np.nan


def length_controlled_win_rate(
    annotations: pd.DataFrame,
    *,
    glm_name: str = DEFAULT_GLM,
    instruction_difficulty: pd.Series | None = None,
    df_gamed: pd.DataFrame | None = None,
    regularize_to_baseline_lambda: float | None | str = "glm",
    n_splits: int = GLM_N_SPLITS,
    C: float = GLM_C,
    Cs: int | Sequence[float] = GLM_CS,
    random_state: int = GLM_RANDOM_STATE,
    n_bootstrap: int = 0,
    bootstrap_seed: int = 0,
) -> dict[str, Any]:
    """Upstream ``get_length_controlled_winrate`` for one model against its baseline, offline.

    ``annotations``: one row per instruction with ``instruction``, ``output_1`` (baseline), ``output_2`` (model),
    ``preference`` (1..2, None/NaN unparsable), ``generator_2`` (one model); ``generator_1`` optional.

    The GLM is ``logit P(model wins) = sum of the formula's terms`` fitted to the soft preferences by
    ``fit_soft_logistic`` (L1, liblinear, ``LogisticRegressionCV`` with 5 group folds, as upstream);
    ``std_delta_len`` is the character-length difference (output_1 - output_2) over its sd. The LC win rate is
    100 x the mean predicted P(model wins) with the length term set to 0; ``lc_standard_error`` is, as upstream,
    100 x the standard error of those per-row predictions.

    GLMs (``glm_name``):
    - ``length_controlled_minimal`` (default, for our own instruction sets): ``tanh(std_delta_len) +
      not_gamed_baseline - 1``, no instruction difficulty. Every prediction row is then identical, so upstream's
      ``lc_standard_error`` is 0 by construction: pass ``n_bootstrap`` (ours) for a sampling standard error.
    - ``length_controlled_fitted_difficulty`` (ours): upstream's ``noreg`` formula with an instruction difficulty
      that *we* fitted across all our models (``fit_instruction_difficulty``); see ``length_controlled_win_rates``.
    - ``length_controlled_noreg`` / ``length_controlled_v1`` (upstream's AlpacaEval 2 leaderboard): only meaningful
      on AlpacaEval's own 805 instructions with upstream's ``instruction_difficulty.csv`` (re-indexed by
      instruction text) and, for v1, upstream's ``df_gamed.csv`` as ``df_gamed`` (rows weighted lambda / 2).

    ``regularize_to_baseline_lambda``: ``"glm"`` takes the GLM's value (0.2 for v1, else None).
    ``n_splits``, ``C`` (used when ``n_splits == 0``), ``Cs``, ``random_state``: upstream's fit settings.
    ``n_bootstrap`` > 1 adds ``lc_bootstrap_standard_error`` (refit on resampled rows at the chosen C; difficulty
    held fixed).

    Returns ``win_rate``'s metrics plus upstream's ``length_controlled_winrate`` and ``lc_standard_error``, and
    ours: ``glm_name``, ``glm_weights`` (by upstream's term names), ``glm_C`` (the chosen C), ``avg_length``
    (upstream's leaderboard column: mean characters of output_2, truncated to int), ``generator``.
    """
    _check_annotations(annotations)
    generators = annotations["generator_2"].unique()
    if len(generators) != 1:
        raise ValueError(f"annotations of {len(generators)} models: use length_controlled_win_rates")
    info = _glm_info(glm_name)
    lam = info["regularize_to_baseline_lambda"] if regularize_to_baseline_lambda == "glm" else (
        regularize_to_baseline_lambda)
    fit_kwargs = dict(n_splits=n_splits, C=C, Cs=Cs, random_state=random_state)
    metrics: dict[str, Any] = win_rate(annotations["preference"])
    model_name = generators[0]

    def fit(frame: pd.DataFrame, **overrides: Any) -> tuple[np.ndarray, dict[str, float], float]:
        return _fit_glm(frame, info, instruction_difficulty, df_gamed, lam, {**fit_kwargs, **overrides})

    is_baseline = "generator_1" in annotations and bool((annotations["generator_1"] == model_name).all())
    if is_baseline:
        # upstream: the baseline against itself is 50% by construction, weights 0
        predicted, weights, chosen_C = np.full(len(annotations), 0.5), {t: 0.0 for t in info["terms"]}, np.nan
    else:
        predicted, weights, chosen_C = fit(annotations)
    metrics["length_controlled_winrate"] = float(np.mean(predicted) * 100)
    metrics["lc_standard_error"] = float(pd.Series(predicted).sem() * 100)
    if n_bootstrap:
        # chosen_C is NaN only when no row parsed; every resample then has none either and _fit_glm returns NaN early
        metrics["lc_bootstrap_standard_error"] = 0.0 if is_baseline else _bootstrap_lc(
            annotations, lambda frame: fit(frame, n_splits=0, C=chosen_C), n_bootstrap, bootstrap_seed)
    metrics.update(
        glm_name=glm_name,
        glm_weights=weights,
        glm_C=chosen_C,
        avg_length=int(annotations["output_2"].astype(str).str.len().mean()),
        generator=str(model_name),
    )
    return metrics


# ----------------------------------------------------------------------------------------------------------------
# Instruction difficulty fitted across our models (notebooks/instruction_difficulty.ipynb)
# ----------------------------------------------------------------------------------------------------------------


def _one_hot(codes: np.ndarray, n_levels: int) -> sp.csr_matrix:
    """Sparse one-hot matrix of integer codes."""
    import scipy.sparse as sp

    rows = np.arange(len(codes))
    return sp.csr_matrix((np.ones(len(codes)), (rows, codes)), shape=(len(codes), n_levels))


def joint_design(annotations: pd.DataFrame) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """The design of upstream's joint formula ``C(generator_2):np.tanh(len) + C(generator_2) + C(index) +
    not_gamed_baseline - 1``: a length slope and a bias per model, one dummy per instruction except the first
    (sorted; treatment coding, its difficulty is 0), and the constant not-gamed column. The length feature is
    standardised per model (upstream's ``make_data``: each model's delta over its own sd).

    Returns (sparse X, column names, instruction levels in column order, the reference first).
    """
    import scipy.sparse as sp

    models = sorted(annotations["generator_2"].astype(str).unique())
    levels = sorted(annotations["instruction"].unique())
    model_codes = pd.Categorical(annotations["generator_2"].astype(str), categories=models).codes
    instruction_codes = pd.Categorical(annotations["instruction"], categories=levels).codes
    length = np.zeros(len(annotations))
    for model in models:
        rows = (annotations["generator_2"].astype(str) == model).to_numpy()
        sub = annotations[rows]
        length[rows] = np.tanh(std_delta_len(sub["output_1"], sub["output_2"]).to_numpy())
    model_dummies = _one_hot(model_codes, len(models))
    X = sp.hstack(
        [
            model_dummies.multiply(length[:, None]),
            model_dummies,
            _one_hot(instruction_codes, len(levels))[:, 1:],
            sp.csr_matrix(np.ones((len(annotations), 1))),
        ],
        format="csr",
    )
    names = (
        [f"C(generator_2)[{m}]:{LENGTH_TERM}" for m in models]
        + [f"C(generator_2)[{m}]" for m in models]
        + [f"C(index)[T.{i}]" for i in range(1, len(levels))]
        + [NOT_GAMED_TERM]
    )
    return X, names, levels


def fit_instruction_difficulty(
    annotations: pd.DataFrame,
    *,
    n_splits: int = GLM_N_SPLITS,
    C: float = GLM_C,
    Cs: int | Sequence[float] = GLM_CS,
    random_state: int = GLM_RANDOM_STATE,
) -> pd.Series:
    """Instruction difficulty fitted by us across all models in ``annotations`` (several ``generator_2``), the way
    upstream's ``notebooks/instruction_difficulty.ipynb`` fitted it across its leaderboard: one joint soft-label
    L1 logistic regression (``joint_design``); the difficulty of an instruction is its dummy's coefficient.

    As the notebook, rows with an unparsable preference or an empty output_2 are left out of the fit; an
    instruction left with no row at all gets the mean fitted difficulty (ours: no information). Upstream's own
    ``instruction_difficulty.csv`` was fitted on AlpacaEval's 805 instructions and means nothing for another set;
    this one means something only for the instructions and models passed in. It needs many models: with a handful
    (3 judgments per instruction in our tests) the cross-validated L1 penalty zeroes every difficulty and the
    variant reduces to the minimal GLM; upstream fitted it on its whole leaderboard. Returns a Series indexed by
    instruction text.
    """
    _check_annotations(annotations)
    if annotations["generator_2"].nunique() < 2:
        raise ValueError("fitting instruction difficulty across models needs annotations of at least two models")
    labels = _soft_labels(annotations["preference"])
    keep = labels.notna() & (annotations["output_2"].astype(str).str.len() > 0)
    frame = annotations[keep]
    X, _, levels = joint_design(frame)
    model = fit_soft_logistic(X, labels[keep].to_numpy(), n_splits=n_splits, C=C, Cs=Cs, random_state=random_state)
    n_models = frame["generator_2"].nunique()
    coefs = model.coef_[0][2 * n_models: 2 * n_models + len(levels) - 1]
    fitted = pd.Series(np.r_[0.0, coefs], index=pd.Index(levels, name="instruction"), name=DIFFICULTY_TERM)
    unseen = sorted(set(annotations["instruction"]) - set(levels))
    if unseen:
        fitted = pd.concat([fitted, pd.Series(fitted.mean(), index=pd.Index(unseen, name="instruction"),
                                              name=DIFFICULTY_TERM)])
    return fitted


def length_controlled_win_rates(
    annotations: pd.DataFrame,
    *,
    glm_name: str = DEFAULT_GLM,
    instruction_difficulty: pd.Series | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """``length_controlled_win_rate`` for every model (``generator_2``) in ``annotations``: model -> metrics.

    With ``glm_name=FITTED_DIFFICULTY_GLM`` and no ``instruction_difficulty``, the difficulty is first fitted by us
    across all the models passed in (``fit_instruction_difficulty``, same fit settings), then each model's GLM
    is fitted alone with it (upstream's ``noreg`` formula, as the notebook's disjoint fit). Other keyword
    arguments go to ``length_controlled_win_rate``.
    """
    _check_annotations(annotations)
    needs_difficulty = DIFFICULTY_TERM in _glm_info(glm_name)["terms"]
    if needs_difficulty and instruction_difficulty is None and glm_name == FITTED_DIFFICULTY_GLM:
        fit_keys = {"n_splits", "C", "Cs", "random_state"}
        instruction_difficulty = fit_instruction_difficulty(
            annotations, **{k: v for k, v in kwargs.items() if k in fit_keys}
        )
    return {
        str(model): length_controlled_win_rate(
            frame, glm_name=glm_name, instruction_difficulty=instruction_difficulty, **kwargs
        )
        for model, frame in annotations.groupby("generator_2", sort=True)
    }
