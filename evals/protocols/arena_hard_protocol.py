r"""Arena-Hard-Auto pairwise judging and scoring, offline, as lmarena/arena-hard-auto does it.

Upstream: lmarena/arena-hard-auto @ 196f6b826783b3da7310e361a805fa36f0be83f3, the v2.0 code base (see
``templates/arena_hard/SOURCE.md``). Hand-written, not imported: arena-hard-auto is a script repository, not a
pip-installable library, and its scoring needs torch and tiktoken's hub-downloaded encoding.

Formats (upstream v2.0's):
- question: ``{uid, category, prompt}`` (``question_id`` accepted for ``uid``)
- answer: ``{uid, model, messages: [{role, content}, ...]}``; the last message's ``content`` is ``{answer: str}``
  upstream, a plain string is accepted too; optional ``metadata`` for style control (see ``answer_style_metadata``).
- judgment row: ``{uid, category, judge, model, baseline, games: [{score, judgment: {answer}, prompt}, {...}]}``,
  game 1 with the baseline as assistant A, game 2 with the model as assistant A.

Two protocol versions (``VERSIONS``), each as its own code base ran it:
- ``v0.1`` (the RLHF Workflow report's; arena-hard-auto @ 3071ef95d913bb5cd632641db336a3b6c7fe4bdd, the last
  commit of the v0.1 code base: ``gen_judgment.py``, ``config/judge_config.yaml``, ``config/gen_answer_config.yaml``,
  ``show_result.py``): judge temperature 0 and max_tokens 4096; one regex ``\[\[([AB<>=]+)\]\]`` on the raw text,
  a verdict only when exactly one distinct label matches; when none matches, a second call with the first judgment
  and "continue your judgment and finish by outputting a final verdict label" appended
  (``number_of_judgment_attempts: 2``), parsed on both judgments joined; a game without a scorable verdict is
  dropped alone (``get_battles_from_row``: weight 0); answers with temperature 0 and max_tokens 4096; one system
  prompt for every question.
- ``v2.0`` (arena-hard-auto @ 196f6b826783b3da7310e361a805fa36f0be83f3): judge temperature 0 and max_tokens 16000
  (``config/arena-hard-v2.0.yaml``); both regexes on the upper-cased text, the last match of the first pattern
  that matches; one call; a judgment row with a null game is dropped whole (``load_judgments``); the system
  prompt per category (``JUDGE_SETTINGS``); answers with each model's own settings (the study's ``generation``).

Example::

    version = VERSIONS["v0.1"]
    requests = render_games(question, answer, baseline_answer, key="arena_hard/" + question["uid"], version=version)
    responses = judge.judge(requests)
    again = [follow_up(r, resp, version) for r, resp in zip(requests, responses)]   # None: no second call
    ...
    rows.append(judgment_record(question, answer, baseline_answer, requests, calls, version))
    table = bradley_terry_scores(judgments_to_battles(rows, version), baseline="sft", style_metadata=metadata)
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from evals.judges.base import JudgeRequest, JudgeResponse

TEMPLATE_DIR = Path(__file__).parent.parent / "templates" / "arena_hard"
JUDGE_SETTINGS_FILE = TEMPLATE_DIR / "judge_settings.json"
DEFAULT_BENCH = "arena-hard-v2.0"
# utils/judge_utils.py JUDGE_SETTINGS: the setting whose prompt judges every category not listed upstream.
DEFAULT_SETTING = "arena-hard-v0.1"

# show_result.py load_judgments(weight=3): a strong verdict ([[A>>B]]) counts as this many battles.
WEIGHT = 3
# show_result.py load_judgments: verdict label -> assistant A's outcome(s), for weight 1 (strong labels repeat).
LABEL_OUTCOME = {
    "A>B": 1.0, "A>>B": 1.0, "A=B": 0.5, "A<<B": 0.0, "A<B": 0.0,
    "B>A": 0.0, "B>>A": 0.0, "B=A": 0.5, "B<<A": 1.0, "B<A": 1.0,
}  # fmt: skip
STRONG_LABELS = frozenset({"A>>B", "A<<B", "B>>A", "B<<A"})
# The five verdicts the upstream system prompt asks for.
VERDICTS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")

# utils/add_markdown_info.py: code blocks are removed before markdown elements are counted.
CODE_BLOCK_PATTERN = re.compile("```([^`]*)```")
# show_result.py print_leaderboard_with_style_features: metadata order (token_len first, then markdown counts).
STYLE_ELEMENTS = ("token_len", "header_count", "list_count", "bold_count")
CONTROL_FEATURES = ("length", "markdown")
# utils/math_utils.py bootstrap_pairwise_model(num_round=100) and show_result.py print_leaderboard range(100).
NUM_ROUNDS = 100
# v0.1 show_result.py: np.percentile(bootstrap, 2.5) / (..., 97.5).
CI = 0.95




@dataclass(frozen=True)
class Version:
    """One arena-hard-auto protocol version: what its own code base does at each step (module docstring)."""

    name: str
    bench: str                                   # templates/arena_hard/<bench>.yaml: prompt template, regexes
    upstream_commit: str
    judge_sampling: dict[str, Any]               # the judge call's temperature and max_tokens
    judgment_attempts: int                       # 2: a second "continue" call when the first has no verdict
    null_drops: str                              # "game": only the game without a verdict; "row": both games
    answer_generation: dict[str, Any] = field(default_factory=dict)   # the answers' budget (empty: the study's)
    system_prompt_setting: str | None = None     # one system prompt for every category (v0.1)


VERSIONS = {
    "v0.1": Version(
        name="v0.1", bench="arena-hard-v0.1", upstream_commit="3071ef95d913bb5cd632641db336a3b6c7fe4bdd",
        judge_sampling={"temperature": 0, "max_tokens": 4096}, judgment_attempts=2, null_drops="game",
        answer_generation={"temperature": 0.0, "max_new_tokens": 4096}, system_prompt_setting="arena-hard-v0.1"),
    "v2.0": Version(
        name="v2.0", bench="arena-hard-v2.0", upstream_commit="196f6b826783b3da7310e361a805fa36f0be83f3",
        judge_sampling={"temperature": 0.0, "max_tokens": 16000}, judgment_attempts=1, null_drops="row"),
}
DEFAULT_VERSION = "v2.0"
# v0.1 gen_judgment.py judgment(): the second attempt's user message.
CONTINUE_MESSAGE = "continue your judgment and finish by outputting a final verdict label"
# v0.1 config/judge_config.yaml regex_pattern.
V01_PATTERN = re.compile(r"\[\[([AB<>=]+)\]\]")
# v0.1 show_result.py get_battles_from_row: the labels it scores (any other verdict gets weight 0).
V01_LABELS = frozenset({"A=B", "A>B", "A>>B", "B>A", "B>>A"})


def get_version(name: str | None) -> Version:
    """The protocol version of config key ``evals.arena_hard.version``; an unknown one raises naming the valid."""
    name = name or DEFAULT_VERSION
    if name not in VERSIONS:
        raise ValueError(f"config key evals.arena_hard.version: {name!r} is not one of {sorted(VERSIONS)}")
    return VERSIONS[name]


# --------------------------------------------------------------------------- templates


@lru_cache(maxsize=None)
def load_config(bench: str = DEFAULT_BENCH) -> dict[str, Any]:
    """Upstream ``config/<bench>.yaml``: ``prompt_template``, ``regex_patterns``, judge model and sampling."""
    with open(TEMPLATE_DIR / f"{bench}.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@lru_cache(maxsize=None)
def load_judge_settings() -> dict[str, dict[str, str]]:
    """Upstream ``utils/judge_utils.py`` ``JUDGE_SETTINGS``: category -> ``{baseline, system_prompt}``."""
    with open(JUDGE_SETTINGS_FILE, encoding="utf-8") as handle:
        return json.load(handle)


def system_prompt_for(category: str) -> str:
    """The upstream judge system prompt of a category (creative writing has its own; unknown ones get the original)."""
    settings = load_judge_settings()
    return settings.get(category, settings[DEFAULT_SETTING])["system_prompt"]


def question_uid(question: Mapping[str, Any]) -> str:
    """The question's id: ``uid`` (v2.0 code base) or ``question_id`` (older files)."""
    return question["uid"] if "uid" in question else question["question_id"]


def answer_text(answer: Mapping[str, Any]) -> str:
    """The final assistant text: upstream reads ``messages[-1]["content"]["answer"]``; a plain string works too."""
    content = answer["messages"][-1]["content"]
    return content["answer"] if isinstance(content, Mapping) else content


# --------------------------------------------------------------------------- judging


def render_pairwise_judge_request(
    question: Mapping[str, Any],
    answer_a: Mapping[str, Any],
    answer_b: Mapping[str, Any],
    key: str,
    reference: Mapping[str, Any] | None = None,
    version: Version = VERSIONS[DEFAULT_VERSION],
) -> JudgeRequest:
    """One game, as upstream ``pairwise_judgment``: the system prompt (v0.1: its one prompt; v2.0: the category's)
    + the version's ``prompt_template``, sent with the version's judge temperature and max_tokens.

    Upstream passes a reference as ``REFERENCE`` to a template that has no such field, so it is silently dropped;
    here a reference with such a template is an error rather than a no-op.
    """
    bench = version.bench
    template = load_config(bench)["prompt_template"]
    prompt_args = {"QUESTION": question["prompt"], "ANSWER_A": answer_text(answer_a), "ANSWER_B": answer_text(answer_b)}
    if reference is not None:
        if "{REFERENCE}" not in template:
            raise ValueError(f"the {bench} prompt template has no {{REFERENCE}} field; upstream ignores references")
        prompt_args["REFERENCE"] = answer_text(reference)
    messages = [
        {"role": "system", "content": system_prompt_for(version.system_prompt_setting or question["category"])},
        {"role": "user", "content": template.format(**prompt_args)},
    ]
    oracle = {
        "suite": "arena_hard",
        "output_format": "[[A>B]]",
        "question": dict(question),
        "model_a": answer_a.get("model"),
        "model_b": answer_b.get("model"),
        "answer_a": prompt_args["ANSWER_A"],
        "answer_b": prompt_args["ANSWER_B"],
    }
    return JudgeRequest(key=key, messages=messages, oracle=oracle, sampling=dict(version.judge_sampling))


def render_games(
    question: Mapping[str, Any],
    answer: Mapping[str, Any],
    baseline_answer: Mapping[str, Any],
    key: str,
    reference: Mapping[str, Any] | None = None,
    version: Version = VERSIONS[DEFAULT_VERSION],
) -> list[JudgeRequest]:
    """Upstream ``judgment``: game 1 has the baseline as A and the model as B, game 2 the reverse."""
    return [
        render_pairwise_judge_request(question, baseline_answer, answer, f"{key}/game1", reference, version),
        render_pairwise_judge_request(question, answer, baseline_answer, f"{key}/game2", reference, version),
    ]


def v01_get_score(judgment: str) -> tuple[str | None, bool]:
    """v0.1 ``gen_judgment.get_score``: (label, try_again). No match: (None, True); one distinct label:
    (label, False); several distinct labels: (None, False)."""
    matches = [m for m in V01_PATTERN.findall(judgment) if m != ""]
    if len(set(matches)) == 0:
        return None, True
    if len(set(matches)) == 1:
        return matches[0].strip("\n"), False
    return None, False


def follow_up(request: JudgeRequest, response: JudgeResponse, version: Version) -> JudgeRequest | None:
    """v0.1's second attempt: when the first judgment has no verdict at all, the same conversation with the
    judgment as the assistant's turn and ``CONTINUE_MESSAGE`` as the user's; None when no second call is due."""
    if version.judgment_attempts < 2 or not v01_get_score("\n" + response.text)[1]:
        return None
    messages = request.messages + [{"role": "assistant", "content": response.text},
                                   {"role": "user", "content": CONTINUE_MESSAGE}]
    return JudgeRequest(key=f"{request.key}/attempt2", messages=messages, oracle=request.oracle,
                        sampling=request.sampling)


def upstream_get_score(judgment: str, patterns: Sequence[str]) -> str | None:
    """Upstream ``gen_judgment.get_score``: per pattern in order, the last non-empty match on the upper-cased text."""
    for pattern in patterns:
        matches = [m for m in re.compile(pattern).findall(judgment.upper()) if m != ""]
        if len(set(matches)) > 0:
            return matches[-1].strip("\n")
    return None


def parse_verdict(text: str, patterns: Sequence[str] | None = None) -> str | None:
    """The verdict label (``"A>>B"``, ``"A>B"``, ``"A=B"``, ``"B>A"``, ``"B>>A"``, ...) or ``None``.

    Upstream's regexes (``[[...]]`` then the fallback ``[...]``) and ``get_score``. A match that is not a label
    upstream's ``show_result`` can score (e.g. ``[[A]]``) is ``None`` here, where upstream would crash on it later.
    """
    label = upstream_get_score(text, patterns if patterns is not None else load_config()["regex_patterns"])
    return label if label in LABEL_OUTCOME else None


def game_verdict(texts: Sequence[str], version: Version) -> tuple[str | None, str]:
    """(scorable label or None, the judgment text upstream stores) of one game's judge answers in call order.

    v0.1: the answers joined as ``judgment += "\n" + new_judgment``, parsed by ``v01_get_score``; a label
    ``show_result`` does not score (e.g. ``A<B``) is None. v2.0: ``get_score`` on the one answer."""
    if version.name == "v0.1":
        judgment = "".join("\n" + t for t in texts)
        label, _ = v01_get_score(judgment)
        return (label if label in V01_LABELS else None), judgment
    return parse_verdict(texts[-1], load_config(version.bench)["regex_patterns"]), texts[-1]


def game_record(request: JudgeRequest, responses: Sequence[JudgeResponse], version: Version) -> dict[str, Any]:
    """One game as upstream stores it (``score``, ``judgment: {answer}``, ``prompt``) plus our judge bookkeeping
    (``attempts``: judge calls made; ``prompt_hash`` of the last call, latency summed, cache hit if all were)."""
    label, judgment = game_verdict([r.text for r in responses], version)
    return {
        "score": label,
        "judgment": {"answer": judgment},
        "prompt": request.messages,
        "judge_id": responses[-1].judge_id,
        "prompt_hash": responses[-1].prompt_hash,
        "latency_s": sum(r.latency_s for r in responses),
        "cache_hit": all(r.cache_hit for r in responses),
        "attempts": len(responses),
    }


def judgment_record(
    question: Mapping[str, Any],
    answer: Mapping[str, Any],
    baseline_answer: Mapping[str, Any],
    requests: Sequence[JudgeRequest],
    calls: Sequence[Sequence[JudgeResponse]],
    version: Version = VERSIONS[DEFAULT_VERSION],
) -> dict[str, Any]:
    """One judgment row in upstream's format (``gen_judgment.judgment``), from the two games of ``render_games``;
    ``calls[g]``: game g's judge answers in call order (two when v0.1 asked again)."""
    if len(requests) != 2 or len(calls) != 2:
        raise ValueError("an Arena-Hard judgment has exactly two games")
    return {
        "uid": question_uid(question),
        "category": question["category"],
        "judge": calls[0][-1].judge_id,
        "model": answer["model"],
        "baseline": baseline_answer["model"],
        "version": version.name,
        "games": [game_record(req, resp, version) for req, resp in zip(requests, calls)],
    }


# --------------------------------------------------------------------------- battles


def label_scores(label: str, weight: int = WEIGHT) -> list[float]:
    """Upstream ``label_to_score``: assistant A's outcome, repeated ``weight`` times for a strong verdict."""
    return [LABEL_OUTCOME[label]] * (weight if label in STRONG_LABELS else 1)


def is_null_judgment(games: Sequence[Mapping[str, Any] | None]) -> bool:
    """Upstream v2.0 ``load_judgments``' null test: a missing game or a game without a score drops the whole row."""
    return len(games) < 2 or any(game is None or game.get("score") is None for game in games[:2])


def _scored(game: Mapping[str, Any] | None) -> bool:
    return game is not None and game.get("score") is not None


def model_scores(games: Sequence[Mapping[str, Any]], weight: int = WEIGHT,
                 version: Version = VERSIONS[DEFAULT_VERSION]) -> list[float]:
    """The model's outcomes from its two games. v2.0: game 2 as A, then 1 - A's outcome in game 1 (its order).
    v0.1 (``get_battles_from_row``): game 1 then game 2, a game without a scorable verdict left out alone."""
    labels = V01_LABELS if version.null_drops == "game" else LABEL_OUTCOME
    scored = [_scored(g) and g["score"] in labels for g in list(games[:2]) + [None] * (2 - len(games[:2]))]
    as_b = [1.0 - s for s in label_scores(games[0]["score"], weight)] if scored[0] else []
    as_a = label_scores(games[1]["score"], weight) if scored[1] else []
    return as_b + as_a if version.null_drops == "game" else as_a + as_b


def judgments_to_battles(judgments: Iterable[Mapping[str, Any]] | pd.DataFrame, weight: int = WEIGHT,
                         version: Version = VERSIONS[DEFAULT_VERSION]) -> pd.DataFrame:
    """Upstream ``load_judgments`` (v2.0) / ``get_battles_from_judgment`` (v0.1): one row per battle (strong
    verdicts repeated), columns ``uid, category, model, baseline, scores``; ``scores`` is the model's outcome vs
    the baseline (1, 0.5, 0). v2.0 drops a row with a null game; v0.1 drops only that game."""
    rows = judgments.to_dict("records") if isinstance(judgments, pd.DataFrame) else list(judgments)
    battles = []
    for row in rows:
        if version.null_drops == "row" and is_null_judgment(row["games"]):
            continue
        uid = row["uid"] if "uid" in row else row["question_id"]
        for score in model_scores(row["games"], weight, version):
            battles.append(
                {"uid": uid, "category": row.get("category"), "model": row["model"],
                 "baseline": row.get("baseline"), "scores": score}
            )  # fmt: skip
    return pd.DataFrame(battles, columns=["uid", "category", "model", "baseline", "scores"])


# --------------------------------------------------------------------------- style features


def count_markdown_elements(markdown_text: str) -> dict[str, dict[str, int]]:
    """Upstream ``count_markdown_elements`` (suffix ``""``): headers h1-h6, ordered/unordered list items, bold."""
    return {
        "header_count": {f"h{k}": len(re.findall(rf"^#{{{k}}}\s", markdown_text, re.MULTILINE)) for k in range(1, 7)},
        "list_count": {
            "ordered": len(re.findall(r"^\s*\d+\.\s", markdown_text, re.MULTILINE)),
            "unordered": len(re.findall(r"^\s*[-*+]\s", markdown_text, re.MULTILINE)),
        },
        "bold_count": {
            "**": len(re.findall(r"\*\*[^*\n]+\*\*", markdown_text)),
            "__": len(re.findall(r"__[^_\n]+__", markdown_text)),
        },
    }


def remove_code_blocks(answer: str) -> str:
    """Upstream ``remove_pattern(answer, re.compile("```([^`]*)```"))`` (removes the block's inner text)."""
    for block in CODE_BLOCK_PATTERN.findall(answer):
        answer = answer.replace(block, "")
    return answer


def simple_token_count(text: str) -> int:
    """Offline stand-in for upstream's ``len(tiktoken.encoding_for_model("gpt-4o").encode(text))``: words and
    punctuation marks. Pass a real tokenizer's counter to ``text_style_metadata`` where one is available."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def text_style_metadata(text: str, count_tokens: Callable[[str], int] = simple_token_count) -> dict[str, Any]:
    """An answer's upstream ``metadata``: ``token_len`` of the full text, markdown counts without code blocks."""
    return {"token_len": count_tokens(text)} | count_markdown_elements(remove_code_blocks(text))


def answer_style_metadata(
    answer: Mapping[str, Any], count_tokens: Callable[[str], int] = simple_token_count
) -> dict[str, Any]:
    """Upstream ``gen_answer.py``'s answer ``metadata``; an answer that already carries ``metadata`` keeps it."""
    return dict(answer["metadata"]) if "metadata" in answer else text_style_metadata(answer_text(answer), count_tokens)


def style_vector(metadata: Mapping[str, Any]) -> list[float]:
    """Upstream: each element in ``STYLE_ELEMENTS`` order, an int as is or the sum of a dict of counts."""
    values = (metadata[name] for name in STYLE_ELEMENTS)
    return [float(sum(v.values()) if isinstance(v, Mapping) else v) for v in values]


def safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (upstream would produce NaN and assert)."""
    out = np.zeros_like(numerator, dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def style_differences(model: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Upstream v2.0 features per battle: length (m - b) / (m + b); markdown densities d = count / (len + 1),
    then (d_m - d_b) / (d_m + d_b + 1). Inputs are (n, 4) in ``STYLE_ELEMENTS`` order."""
    features = np.zeros_like(model, dtype=float)
    features[:, 0] = safe_ratio(model[:, 0] - baseline[:, 0], model[:, 0] + baseline[:, 0])
    model_density = model[:, 1:] / (model[:, :1] + 1)
    baseline_density = baseline[:, 1:] / (baseline[:, :1] + 1)
    features[:, 1:] = (model_density - baseline_density) / (model_density + baseline_density + 1)
    return features


def standardize(features: np.ndarray) -> np.ndarray:
    """Upstream: (x - mean) / std per column, torch's unbiased std; a constant column becomes 0 instead of NaN."""
    std = features.std(axis=0, ddof=1) if len(features) > 1 else np.zeros(features.shape[1])
    return safe_ratio(features - features.mean(axis=0), np.broadcast_to(std, features.shape))


def select_control_features(features: np.ndarray, control_features: Sequence[str]) -> np.ndarray:
    """Upstream ``--control-features``: ``length`` is column 0, ``markdown`` columns 1-3."""
    unknown = set(control_features) - set(CONTROL_FEATURES)
    if unknown or not control_features:
        raise ValueError(f"control features must be a non-empty subset of {CONTROL_FEATURES}, got {control_features}")
    columns = ([0] if "length" in control_features else []) + ([1, 2, 3] if "markdown" in control_features else [])
    return features[:, columns]


def style_feature_matrix(
    battles: pd.DataFrame,
    metadata: Mapping[str, Mapping[Any, Mapping[str, Any]]],
    baseline: str,
    control_features: Sequence[str] = CONTROL_FEATURES,
) -> np.ndarray:
    """The standardized style features of every battle row; ``metadata[model][uid]`` as upstream's
    ``get_model_style_metadata`` (model answers' ``metadata``)."""
    model = np.array([style_vector(metadata[m][u]) for m, u in zip(battles["model"], battles["uid"])])
    base = np.array([style_vector(metadata[baseline][u]) for u in battles["uid"]])
    return select_control_features(standardize(style_differences(model, base)), control_features)


# --------------------------------------------------------------------------- Bradley-Terry


def model_indicators(models: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """Upstream ``one_hot_encode`` without the baseline's -1 column: the baseline is the anchor (coefficient 0),
    which leaves every model-minus-baseline difference, and so every win rate, unchanged."""
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(models), len(names)))
    matrix[np.arange(len(models)), [index[m] for m in models]] = 1.0
    return matrix


def fit_bt(features: np.ndarray, outcomes: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Bradley-Terry MLE: logistic regression without intercept or penalty on soft outcomes in [0, 1].

    Same objective as upstream ``fit_pairwise_model(loss_type="bt")`` (summed binary cross-entropy) and v0.1's
    ``compute_mle_elo`` (ties as one win + one loss): each row enters as a win weighted y and a loss weighted 1 - y.
    ``groups`` (optional, one integer per row) marks rows with equal features, e.g. one answer's battles: the summed
    loss is the same with each group fitted once, weighted by its summed wins and losses, and much faster.
    """
    from sklearn.exceptions import ConvergenceWarning  # here, not at the top: judging needs no scikit-learn
    from sklearn.linear_model import LogisticRegression

    if groups is None:
        groups = np.arange(len(outcomes))
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    wins = np.bincount(inverse, weights=outcomes, minlength=len(first))
    losses = np.bincount(inverse, weights=1.0 - outcomes, minlength=len(first))
    active = np.flatnonzero(np.any(features != 0, axis=0))  # an all-zero column has no information: coefficient 0
    rows = features[first][:, active]
    x = np.vstack([rows, rows])
    y = np.concatenate([np.ones(len(rows)), np.zeros(len(rows))])
    weights = np.concatenate([wins, losses])  # zero-weight rows are inert and keep both classes present
    model = LogisticRegression(C=np.inf, fit_intercept=False, solver="newton-cholesky", tol=1e-8, max_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # separable data: the MLE is at infinity, coefs just grow
        model.fit(x, y, sample_weight=weights)
    coefs = np.zeros(features.shape[1])
    coefs[active] = model.coef_[0]
    return coefs


def win_rate_percent(coefs: np.ndarray) -> np.ndarray:
    """Upstream ``to_winrate_probabilities`` in percent: exp(c_m) / (exp(c_m) + exp(c_baseline)), c_baseline = 0."""
    return 100.0 / (1.0 + np.exp(-coefs))


def stratified_bootstrap(groups: np.ndarray, num_rounds: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices of each round, resampled with replacement within each model (upstream ``print_leaderboard``'s
    ``groupby("model").sample(frac=1.0, replace=True)``; used for style control too, so no model drops out)."""
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    return [np.concatenate([rng.choice(m, size=len(m), replace=True) for m in members]) for _ in range(num_rounds)]


def bootstrap_win_rates(
    features: np.ndarray, outcomes: np.ndarray, groups: np.ndarray, n_models: int, boot_indices: Sequence[np.ndarray]
) -> np.ndarray:
    """Win rates (%) of the first ``n_models`` coefficients, one row per bootstrap round (``groups``: ``fit_bt``'s)."""
    return np.array([win_rate_percent(fit_bt(features[i], outcomes[i], groups[i])[:n_models]) for i in boot_indices])


def score_table(
    names: Sequence[str], point: np.ndarray, boots: np.ndarray, ci: float, prefix: str = ""
) -> pd.DataFrame:
    """Per-model point score and the bootstrap percentile interval, all in percent."""
    lower, upper = np.percentile(boots, [50 * (1 - ci), 50 * (1 + ci)], axis=0)
    return pd.DataFrame(
        {f"{prefix}score": point, f"{prefix}lower": lower, f"{prefix}upper": upper}, index=pd.Index(names, name="model")
    )


def style_controlled_scores(
    indicators: np.ndarray,
    style: np.ndarray,
    outcomes: np.ndarray,
    names: Sequence[str],
    boot_indices: Sequence[np.ndarray],
    ci: float,
    control_features: Sequence[str],
    groups: np.ndarray,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Upstream v2.0 style control: BT on [model indicators, style features]; win rates from the model coefficients
    only (``coefs[:, :-num_features]``), style coefficients reported as bootstrap medians (``groups``: ``fit_bt``'s)."""
    features = np.hstack([indicators, style])
    n_models = len(names)
    point = win_rate_percent(fit_bt(features, outcomes, groups)[:n_models])
    boots = np.array([fit_bt(features[i], outcomes[i], groups[i]) for i in boot_indices])
    table = score_table(names, point, win_rate_percent(boots[:, :n_models]), ci, prefix="style_")
    feature_names = (["length"] if "length" in control_features else []) + (
        ["header", "list", "bold"] if "markdown" in control_features else []
    )
    return table, dict(zip(feature_names, np.median(boots[:, n_models:], axis=0).tolist()))


def check_battles(battles: pd.DataFrame, baseline: str) -> None:
    """Battles must be non-empty, all against ``baseline`` (one category's baseline, as upstream), none by it."""
    if battles.empty:
        raise ValueError("no battles to score")
    if "baseline" in battles and battles["baseline"].notna().any() and set(battles["baseline"].dropna()) != {baseline}:
        raise ValueError(f"battles against {sorted(set(battles['baseline'].dropna()))}, expected only {baseline!r}")
    if (battles["model"] == baseline).any():
        raise ValueError(f"the baseline {baseline!r} cannot also be a judged model")


def bradley_terry_scores(
    battles: pd.DataFrame,
    baseline: str,
    *,
    num_rounds: int = NUM_ROUNDS,
    seed: int = 0,
    ci: float = CI,
    style_metadata: Mapping[str, Mapping[Any, Mapping[str, Any]]] | None = None,
    control_features: Sequence[str] = CONTROL_FEATURES,
) -> pd.DataFrame:
    """Arena-Hard scores: Bradley-Terry win rate vs ``baseline`` in percent with a bootstrap CI, per model.

    ``battles``: from ``judgments_to_battles``. Point score: the fit on all battles (v0.1 ``show_result``);
    ``lower``/``upper``: the ``(1 - ci) / 2`` and ``(1 + ci) / 2`` percentiles over ``num_rounds`` seeded bootstrap
    rounds (v2.0 prints the bootstrap median and ``ci=0.90``). With ``style_metadata`` (``metadata[model][uid]``,
    including the baseline's answers) the style-controlled fit (v2.0 ``print_leaderboard_with_style_features``) adds
    ``style_score``, ``style_lower``, ``style_upper``; its feature coefficients (medians) are in
    ``table.attrs["style_coefficients"]``. As upstream, style features are centred over all battles, so the
    controlled scores are win rates at the battles' mean style difference. The baseline's row is 50 throughout.
    Also returns ``n_battles`` (rows, strong verdicts counted ``WEIGHT`` times).
    """
    check_battles(battles, baseline)
    names = sorted(battles["model"].unique())
    models = battles["model"].to_numpy()
    outcomes = battles["scores"].to_numpy(dtype=float)
    indicators = model_indicators(models, names)
    rng = np.random.default_rng(seed)
    boot_indices = stratified_bootstrap(models, num_rounds, rng)

    groups = pd.factorize(pd.MultiIndex.from_arrays([battles["model"], battles["uid"].astype(str)]))[0]  # equal rows
    point = win_rate_percent(fit_bt(indicators, outcomes, groups))
    table = score_table(names, point, bootstrap_win_rates(indicators, outcomes, groups, len(names), boot_indices), ci)
    if style_metadata is not None:
        style = style_feature_matrix(battles, style_metadata, baseline, control_features)
        style_table, coefficients = style_controlled_scores(
            indicators, style, outcomes, names, boot_indices, ci, control_features, groups
        )
        table = table.join(style_table)
        table.attrs["style_coefficients"] = coefficients
    table["n_battles"] = battles.groupby("model").size().reindex(names).to_numpy()
    table.loc[baseline] = 50.0
    table.loc[baseline, "n_battles"] = 0
    table["n_battles"] = table["n_battles"].astype(int)
    return table
