"""Arena-Hard-Auto judging and scoring against lmarena/arena-hard-auto (v2.0 @ 196f6b82, v0.1 @ 3071ef95)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from evals.protocols import arena_hard_protocol as ah
from evals.judges.base import JudgeRequest, JudgeResponse

QUESTION = {"uid": "q1", "category": "hard_prompt", "prompt": "Explain recursion."}
BASELINE = "base"


def answer(model: str, text: str, uid: str = "q1", plain: bool = False) -> dict:
    """An answer in upstream v2.0 format (assistant content ``{answer: ...}``), or with a plain string."""
    content = text if plain else {"answer": text}
    messages = [{"role": "user", "content": "p"}, {"role": "assistant", "content": content}]
    return {"uid": uid, "model": model, "messages": messages}


def judgment(model: str, game1: str | None, game2: str | None, uid: str = "q1") -> dict:
    """A judgment row in upstream format with the two games' verdicts."""
    return {"uid": uid, "category": "hard_prompt", "judge": "j", "model": model, "baseline": BASELINE,
            "games": [{"score": game1}, {"score": game2}]}  # fmt: skip


# ----------------------------------------------------------------------------------------------- templates


def test_templates_load_from_upstream_files():
    config = ah.load_config()
    assert config["regex_patterns"] == [r"\[\[([AB<>=]+)\]\]", r"\[([AB<>=]+)\]"]
    assert ah.load_config("arena-hard-v0.1")["prompt_template"] == config["prompt_template"]
    settings = ah.load_judge_settings()
    assert settings["arena-hard-v0.1"]["baseline"] == "gpt-4-0314"
    assert settings["hard_prompt"]["system_prompt"] == settings["arena-hard-v0.1"]["system_prompt"]
    assert settings["creative_writing"]["system_prompt"] != settings["hard_prompt"]["system_prompt"]


def test_pairwise_prompt_is_exactly_upstreams():
    base, model = answer("base", "Base text."), answer("sft", "Model text.", plain=True)
    request = ah.render_pairwise_judge_request(QUESTION, base, model, key="k")
    system, user = request.messages
    assert system["role"] == "system" and user["role"] == "user"
    assert system["content"].startswith("Please act as an impartial judge")
    assert system["content"].endswith('Example output: "My final verdict is tie: [[A=B]]".')
    assert "Begin your evaluation by generating your own answer" in system["content"]
    assert user["content"] == (
        "<|User Prompt|>\nExplain recursion.\n\n<|The Start of Assistant A's Answer|>\nBase text.\n"
        "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\nModel text.\n"
        "<|The End of Assistant B's Answer|>"
    )


@pytest.mark.parametrize("category", ["hard_prompt", "coding", "math", "creative_writing", "arena-hard-v0.1", "x"])
def test_every_category_renders(category):
    question = dict(QUESTION, category=category)
    request = ah.render_pairwise_judge_request(question, answer("base", "a"), answer("sft", "b"), key="k")
    assert request.messages[0]["content"] == ah.system_prompt_for(category)
    own_answer = "Begin your evaluation by generating your own answer" in request.messages[0]["content"]
    assert own_answer == (category != "creative_writing")


def test_games_are_played_in_both_orders():
    game1, game2 = ah.render_games(QUESTION, answer("sft", "MODEL"), answer("base", "BASE"), key="arena_hard/q1")
    assert (game1.key, game2.key) == ("arena_hard/q1/game1", "arena_hard/q1/game2")
    assert (game1.oracle["model_a"], game1.oracle["model_b"]) == ("base", "sft")
    assert (game2.oracle["model_a"], game2.oracle["model_b"]) == ("sft", "base")
    assert game1.messages[1]["content"].index("BASE") < game1.messages[1]["content"].index("MODEL")
    assert game2.messages[1]["content"].index("MODEL") < game2.messages[1]["content"].index("BASE")


def test_reference_with_a_template_that_cannot_show_it_fails_loudly():
    with pytest.raises(ValueError, match="REFERENCE"):
        ah.render_pairwise_judge_request(QUESTION, answer("a", "x"), answer("b", "y"), "k", reference=answer("r", "z"))


# ----------------------------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("My final verdict is: [[A>>B]]", "A>>B"),
        ("My final verdict is: [[A>B]]", "A>B"),
        ("My final verdict is tie: [[A=B]]", "A=B"),
        ("My final verdict is: [[B>A]]", "B>A"),
        ("My final verdict is: [[B>>A]]", "B>>A"),
        ("verdict [[b>>a]]", "B>>A"),  # upstream matches on judgment.upper()
        ("Options: [[A>>B]] ... [[A=B]]. My final verdict is [[B>A]]", "B>A"),  # the last match
        ("My final verdict is [B>A]", "B>A"),  # the fallback pattern
        ("[A>B] in passing, then [[B>>A]]", "B>>A"),  # the double-bracket pattern comes first
        ("Assistant B is better: [[B]]", None),  # matched, but not a label upstream can score
        ("No verdict given.", None),
        ("", None),
    ],
)
def test_parse_verdict_follows_upstream_get_score(text, verdict):
    assert ah.parse_verdict(text) == verdict


def test_get_score_is_upstreams_raw_behaviour():
    assert ah.upstream_get_score("[[A]]", ah.load_config()["regex_patterns"]) == "A"
    assert ah.upstream_get_score("nothing", ah.load_config()["regex_patterns"]) is None


def test_judgment_record_has_upstream_fields():
    requests = ah.render_games(QUESTION, answer("sft", "m"), answer("base", "b"), key="k")
    responses = [
        JudgeResponse(key=r.key, judge_id="j", prompt_hash="h", text=t, latency_s=0.0, cache_hit=True)
        for r, t in zip(requests, ["... [[A>B]]", "... [[A>>B]]"])
    ]
    row = ah.judgment_record(QUESTION, answer("sft", "m"), answer("base", "b"), requests, [[r] for r in responses])
    assert {k: row[k] for k in ("uid", "category", "judge", "model", "baseline")} == {
        "uid": "q1", "category": "hard_prompt", "judge": "j", "model": "sft", "baseline": "base"}  # fmt: skip
    assert [g["score"] for g in row["games"]] == ["A>B", "A>>B"]
    assert row["games"][0]["judgment"] == {"answer": "... [[A>B]]"}
    assert row["games"][1]["prompt"] == requests[1].messages


# ----------------------------------------------------------------------------------------------- battles


def test_battles_follow_upstream_label_to_score():
    # show_result.py load_judgments: scores = label_to_score[game2] + [1 - s for s in label_to_score[game1]].
    battles = ah.judgments_to_battles([judgment("sft", "A>>B", "A>B")])
    assert battles["scores"].tolist() == [1.0, 0.0, 0.0, 0.0]
    battles = ah.judgments_to_battles([judgment("sft", "B>>A", "A=B")])
    assert battles["scores"].tolist() == [0.5, 1.0, 1.0, 1.0]
    assert len(ah.judgments_to_battles([judgment("sft", "A>>B", "B>>A")], weight=1)) == 2


def test_null_games_drop_the_whole_row():
    rows = [judgment("sft", None, "A>B", uid="q1"), judgment("sft", "A>B", "B>A", uid="q2")]
    battles = ah.judgments_to_battles(rows)
    assert battles["uid"].tolist() == ["q2", "q2"]
    assert ah.is_null_judgment([None, {"score": "A>B"}])


# ----------------------------------------------------------------------------------------------- Bradley-Terry


def repeated(model: str, verdicts: list[tuple[str, str]], n: int) -> list[dict]:
    """``n`` questions cycling through (game1, game2) verdict pairs."""
    return [judgment(model, *verdicts[i % len(verdicts)], uid=f"q{i}") for i in range(n)]


def test_model_that_wins_everything_scores_far_above_fifty():
    battles = ah.judgments_to_battles(repeated("strong", [("B>A", "A>B"), ("B>>A", "A>>B")], 40))
    table = ah.bradley_terry_scores(battles, BASELINE, num_rounds=50, seed=1)
    assert table.loc["strong", "score"] > 95
    assert table.loc["strong", "lower"] > 50
    assert table.loc[BASELINE, ["score", "lower", "upper"]].tolist() == [50.0, 50.0, 50.0]


def test_equal_model_scores_fifty_with_ci_around_it():
    # Each question: the model wins game 1 (as B) and loses game 2 (as A), so exactly half its battles.
    battles = ah.judgments_to_battles(repeated("equal", [("B>A", "B>A"), ("A>B", "A>B"), ("A=B", "A=B")], 60))
    table = ah.bradley_terry_scores(battles, BASELINE, num_rounds=100, seed=1)
    assert table.loc["equal", "score"] == pytest.approx(50.0, abs=1e-6)
    assert table.loc["equal", "lower"] < 50 < table.loc["equal", "upper"]


def test_strong_verdicts_weigh_more_than_weak_ones():
    strong_wins = repeated("m", [("B>>A", "A>>B"), ("A>B", "B>A")], 40)  # wins strongly, loses weakly
    weak_wins = repeated("m", [("B>A", "A>B"), ("A>>B", "B>>A")], 40)  # wins weakly, loses strongly
    high = ah.bradley_terry_scores(ah.judgments_to_battles(strong_wins), BASELINE, num_rounds=20)
    low = ah.bradley_terry_scores(ah.judgments_to_battles(weak_wins), BASELINE, num_rounds=20)
    assert high.loc["m", "score"] == pytest.approx(75.0, abs=1e-4)  # 3 of 4 battles
    assert low.loc["m", "score"] == pytest.approx(25.0, abs=1e-4)
    unweighted = ah.bradley_terry_scores(ah.judgments_to_battles(strong_wins, weight=1), BASELINE, num_rounds=20)
    assert unweighted.loc["m", "score"] == pytest.approx(50.0, abs=1e-4)


def test_bootstrap_is_reproducible_with_a_seed():
    rows = repeated("a", [("B>A", "A>B"), ("A>B", "A=B"), ("B>>A", "B>A")], 30)
    battles = ah.judgments_to_battles(rows)
    first = ah.bradley_terry_scores(battles, BASELINE, num_rounds=30, seed=7)
    again = ah.bradley_terry_scores(battles, BASELINE, num_rounds=30, seed=7)
    other = ah.bradley_terry_scores(battles, BASELINE, num_rounds=30, seed=8)
    pd.testing.assert_frame_equal(first, again)
    assert first.loc["a", "score"] == other.loc["a", "score"]
    assert (first.loc["a", "lower"], first.loc["a", "upper"]) != (other.loc["a", "lower"], other.loc["a", "upper"])


def several_models_judgments() -> list[dict]:
    """Three models with wins, losses, ties and strong verdicts."""
    return (
        repeated("good", [("B>A", "A>B"), ("B>>A", "A=B"), ("A>B", "A>>B"), ("A=B", "B>A")], 24)
        + repeated("fair", [("A>B", "A>B"), ("B>A", "B>A"), ("A=B", "A>B"), ("A>>B", "B>A")], 24)
        + repeated("poor", [("A>>B", "B>>A"), ("A>B", "B>A"), ("B>A", "A=B")], 24)
    )


def test_bt_score_equals_v2_print_leaderboard_mean():
    # show_result.py print_leaderboard (v2.0): a model's score is the mean of its battle scores vs the baseline,
    # which is also the Bradley-Terry MLE when every battle is against the baseline.
    battles = ah.judgments_to_battles(several_models_judgments())
    table = ah.bradley_terry_scores(battles, BASELINE, num_rounds=10)
    means = battles.groupby("model")["scores"].mean() * 100
    for model, mean in means.items():
        assert table.loc[model, "score"] == pytest.approx(mean, abs=1e-4)


def v01_battles(judgments: list[dict], multiplier: int = 3) -> pd.DataFrame:
    """show_result.py get_battles_from_row (v0.1 @ 3071ef95): model_a = baseline, model_b = model, winner repeated."""
    game1 = {"A=B": ("tie", 1), "A>B": ("model_a", 1), "A>>B": ("model_a", multiplier), "B>A": ("model_b", 1),
             "B>>A": ("model_b", multiplier)}  # fmt: skip
    game2 = {"A=B": ("tie", 1), "A>B": ("model_b", 1), "A>>B": ("model_b", multiplier), "B>A": ("model_a", 1),
             "B>>A": ("model_a", multiplier)}  # fmt: skip
    rows = []
    for row in judgments:
        for game, table in zip(row["games"], (game1, game2)):
            winner, weight = table[game["score"]]
            rows += [{"model_a": BASELINE, "model_b": row["model"], "winner": winner}] * weight
    return pd.DataFrame(rows)


def v01_win_rates(df: pd.DataFrame, scale: float = 400, base: float = 10, init: float = 1000) -> dict[str, float]:
    """utils_math.py compute_mle_elo + predict_win_rate / get_win_rate_column (v0.1 @ 3071ef95), restated
    (``penalty=None`` is ``C=np.inf`` in scikit-learn >= 1.8)."""
    models = pd.concat([df["model_a"], df["model_b"]]).unique()
    models = pd.Series(np.arange(len(models)), index=models)
    df = pd.concat([df, df], ignore_index=True)  # duplicate battles
    n, p = df.shape[0], len(models)
    x = np.zeros([n, p])
    x[np.arange(n), models[df["model_a"]]] = +math.log(base)
    x[np.arange(n), models[df["model_b"]]] = -math.log(base)
    y = np.zeros(n)
    y[df["winner"] == "model_a"] = 1.0
    tie_idx = (df["winner"] == "tie").to_numpy().copy()
    tie_idx[len(tie_idx) // 2 :] = False  # one tie => one A win + one B win
    y[tie_idx] = 1.0
    lr = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-8).fit(x, y)
    elo = scale * lr.coef_[0] + init
    elo = dict(zip(models.index, elo))
    return {m: 100 / (1 + base ** ((elo[BASELINE] - elo[m]) / scale)) for m in elo if m != BASELINE}


def test_bt_score_matches_v01_compute_mle_elo():
    judgments = several_models_judgments()
    table = ah.bradley_terry_scores(ah.judgments_to_battles(judgments), BASELINE, num_rounds=10)
    for model, rate in v01_win_rates(v01_battles(judgments)).items():
        assert table.loc[model, "score"] == pytest.approx(rate, abs=1e-3)


# ----------------------------------------------------------------------------------------------- style control


def test_markdown_counts_follow_upstream_and_skip_code():
    text = "# Title\n## Part\n1. one\n2. two\n- a\n* b\n**bold** and __also__\n```\n# not a header\n- no\n```\n"
    meta = ah.text_style_metadata(text, count_tokens=lambda s: 42)
    assert meta["token_len"] == 42
    assert meta["header_count"] == {"h1": 1, "h2": 1, "h3": 0, "h4": 0, "h5": 0, "h6": 0}
    assert meta["list_count"] == {"ordered": 2, "unordered": 2}
    assert meta["bold_count"] == {"**": 1, "__": 1}
    assert ah.style_vector(meta) == [42.0, 2.0, 4.0, 2.0]
    assert ah.answer_style_metadata(answer("m", text), count_tokens=lambda s: 42) == meta
    assert ah.answer_style_metadata(dict(answer("m", text), metadata={"token_len": 1}))["token_len"] == 1


def test_style_differences_match_v2_formula_by_hand():
    # show_result.py print_leaderboard_with_style_features (v2.0), one battle worked by hand.
    model = np.array([[300.0, 3.0, 6.0, 0.0]])
    base = np.array([[100.0, 1.0, 0.0, 0.0]])
    features = ah.style_differences(model, base)
    d_m, d_b = np.array([3, 6, 0]) / 301, np.array([1, 0, 0]) / 101
    assert features[0, 0] == pytest.approx(200 / 400)
    np.testing.assert_allclose(features[0, 1:], (d_m - d_b) / (d_m + d_b + 1))
    columns = np.array([[1.0, 0.0], [2.0, 0.0], [6.0, 0.0]])
    np.testing.assert_allclose(ah.standardize(columns)[:, 0], (columns[:, 0] - 3) / np.std(columns[:, 0], ddof=1))
    assert not ah.standardize(columns)[:, 1].any()


def length_biased_world(seed: int = 0, n: int = 150):
    """Two models of equal quality vs a baseline; the judge prefers whichever answer is longer.
    ``verbose`` is usually longer than the baseline, ``plain`` about as long."""
    rng = np.random.default_rng(seed)
    meta: dict[str, dict] = {BASELINE: {}, "verbose": {}, "plain": {}}
    rows = []
    for i in range(n):
        uid = f"q{i}"
        meta[BASELINE][uid] = ah.text_style_metadata("word " * 100)
        for model, scale in (("verbose", 1.8), ("plain", 1.0)):
            length = max(1, int(100 * rng.lognormal(math.log(scale), 0.3)))
            meta[model][uid] = ah.text_style_metadata("word " * length)
            p_model = 1 / (1 + math.exp(-6 * (length - 100) / (length + 100)))
            game1 = "B>A" if rng.random() < p_model else "A>B"
            game2 = "A>B" if rng.random() < p_model else "B>A"
            rows.append(judgment(model, game1, game2, uid=uid))
    return ah.judgments_to_battles(rows), meta


def test_style_control_removes_a_length_only_advantage():
    battles, meta = length_biased_world()
    table = ah.bradley_terry_scores(battles, BASELINE, num_rounds=30, seed=0, style_metadata=meta)
    raw_gap = table.loc["verbose", "score"] - table.loc["plain", "score"]
    style_gap = table.loc["verbose", "style_score"] - table.loc["plain", "style_score"]
    assert raw_gap > 15
    assert table.loc["verbose", "style_score"] < table.loc["verbose", "score"] - 5
    assert abs(style_gap) < raw_gap / 2
    assert table.attrs["style_coefficients"]["length"] > 0
    assert {"style_lower", "style_upper"} <= set(table.columns)
    verbose = table.loc["verbose"]
    assert verbose["style_lower"] <= verbose["style_score"] <= verbose["style_upper"]


def test_length_only_control_uses_one_feature():
    battles, meta = length_biased_world(n=60)
    table = ah.bradley_terry_scores(battles, BASELINE, num_rounds=5, style_metadata=meta, control_features=["length"])
    assert list(table.attrs["style_coefficients"]) == ["length"]
    with pytest.raises(ValueError):
        ah.bradley_terry_scores(battles, BASELINE, num_rounds=5, style_metadata=meta, control_features=["emoji"])


def test_battles_against_another_baseline_are_refused():
    battles = ah.judgments_to_battles([judgment("sft", "A>B", "B>A")])
    with pytest.raises(ValueError, match="expected only"):
        ah.bradley_terry_scores(battles, "other", num_rounds=2)


def test_requests_are_judge_requests():
    request = ah.render_pairwise_judge_request(QUESTION, answer("a", "x"), answer("b", "y"), key="k")
    assert isinstance(request, JudgeRequest) and request.oracle["suite"] == "arena_hard"


def test_judgment_rows_round_trip_through_jsonl(tmp_path):
    rows = several_models_judgments()
    path = tmp_path / "judgments.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    from_file = ah.judgments_to_battles(pd.read_json(path, lines=True))
    pd.testing.assert_frame_equal(from_file, ah.judgments_to_battles(rows))



# ----------------------------------------------------------------------------------------------- v0.1 vs v2.0
# Transcribed from arena-hard-auto @ 3071ef95d913bb5cd632641db336a3b6c7fe4bdd (the v0.1 code base):
# gen_judgment.py get_score / judgment(), config/judge_config.yaml, config/gen_answer_config.yaml and
# show_result.py get_battles_from_row; and @ 196f6b826783b3da7310e361a805fa36f0be83f3 (v2.0).

V01_REGEX = r"\[\[([AB<>=]+)\]\]"          # v0.1 config/judge_config.yaml regex_pattern


def upstream_v01_get_score(judgment, pattern, pairwise=True):
    """v0.1 gen_judgment.py get_score, verbatim."""
    import re

    pattern = re.compile(pattern)
    matches = pattern.findall(judgment)
    matches = [m for m in matches if m != ""]
    if len(set(matches)) == 0:
        return None, True
    elif len(set(matches)) == 1:
        if pairwise:
            return matches[0].strip("\n"), False
        return int(matches[0])
    else:
        return None, False


def upstream_v01_judge_game(conv, answers, attempts=2):
    """v0.1 gen_judgment.py judgment(): the attempts loop of one game, with a scripted judge answering in turn."""
    judgment, calls = "", []
    for _ in range(attempts):
        calls.append([dict(m) for m in conv])
        new_judgment = answers[len(calls) - 1]
        judgment += ("\n" + new_judgment)
        score, try_again = upstream_v01_get_score(judgment, V01_REGEX)
        conv.append({"role": "assistant", "content": new_judgment})
        if not try_again:
            break
        conv.append({"role": "user", "content": "continue your judgment and finish by outputting a final verdict label"})
    return score, judgment, calls


def upstream_v01_battle_weights(games, multiplier=3):
    """v0.1 show_result.py get_battles_from_row: (winner, weight) of game 1 then game 2 (model_a = baseline)."""
    out = []
    for index, game in enumerate(games):
        flip = index == 1
        score = game["score"]
        weight = 1
        if score == "A=B":
            winner = "tie"
        elif score in ("A>B", "A>>B"):
            winner = "model_b" if flip else "model_a"
            weight = multiplier if score == "A>>B" else 1
        elif score in ("B>A", "B>>A"):
            winner = "model_a" if flip else "model_b"
            weight = multiplier if score == "B>>A" else 1
        else:
            weight = 0
        if weight:
            out += [winner] * weight
    return out


def _responses(texts):
    return [JudgeResponse(key=f"k{i}", judge_id="j", prompt_hash=f"h{i}", text=t, latency_s=0.5, cache_hit=False)
            for i, t in enumerate(texts)]


@pytest.mark.parametrize("texts", [
    ["Long answer... My final verdict is: [[A>B]]"],
    ["I would write my own answer first and run out of tokens", "My final verdict is tie: [[A=B]]"],
    ["no verdict", "still none"],
    ["[[A>B]] or maybe [[B>A]]"],                          # two distinct labels: null, no second call
    ["[[a>b]]", "[[B>>A]]"],                               # v0.1 does not upper-case
    ["[[A<B]]"],                                           # a label show_result does not score
    ["[A>B] single brackets", "[[B>A]]"],                  # v0.1 has no fallback pattern
])
def test_v01_judging_follows_its_gen_judgment(texts):
    """Guards the v0.1 protocol: the second call (conversation and message), the joined judgment text, the
    single case-sensitive regex and show_result's scorable labels, against v0.1's own loop."""
    version = ah.VERSIONS["v0.1"]
    first = ah.render_pairwise_judge_request(QUESTION, answer("base", "BASE"), answer("sft", "MODEL"), "k",
                                             version=version)
    expected_score, expected_judgment, upstream_calls = upstream_v01_judge_game(
        [dict(m) for m in first.messages], texts)
    responses = _responses(texts)
    calls = [first]
    again = ah.follow_up(first, responses[0], version)
    if again is not None:
        calls.append(again)
    assert [c.messages for c in calls] == upstream_calls
    game = ah.game_record(first, responses[:len(calls)], version)
    assert game["judgment"]["answer"] == expected_judgment
    assert game["score"] == (expected_score if expected_score in {"A=B", "A>B", "A>>B", "B>A", "B>>A"} else None)
    assert game["attempts"] == len(calls)
    assert all(c.sampling == {"temperature": 0, "max_tokens": 4096} for c in calls)


def test_v01_request_is_its_judge_config():
    """v0.1 judge_config.yaml: one system prompt for every category, the prompt template with the question and
    both answers, temperature 0, max_tokens 4096; v0.1 gen_answer_config.yaml: answers at temperature 0 and
    max_tokens 4096. v2.0: max_tokens 16000 (config/arena-hard-v2.0.yaml), one call, answers with the study's."""
    v01, v20 = ah.VERSIONS["v0.1"], ah.VERSIONS["v2.0"]
    creative = dict(QUESTION, category="creative_writing")
    request = ah.render_pairwise_judge_request(creative, answer("base", "BASE"), answer("sft", "MODEL"), "k",
                                               version=v01)
    assert request.messages[0]["content"] == ah.load_judge_settings()["arena-hard-v0.1"]["system_prompt"]
    assert request.messages[1]["content"] == (
        "<|User Prompt|>\nExplain recursion.\n\n<|The Start of Assistant A's Answer|>\nBASE\n"
        "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\nMODEL\n"
        "<|The End of Assistant B's Answer|>")
    assert (v01.judgment_attempts, v01.answer_generation) == (2, {"temperature": 0.0, "max_new_tokens": 4096})
    v2_request = ah.render_pairwise_judge_request(creative, answer("base", "B"), answer("sft", "M"), "k", version=v20)
    assert v2_request.messages[0]["content"] == ah.load_judge_settings()["creative_writing"]["system_prompt"]
    assert v2_request.sampling == {"temperature": 0.0, "max_tokens": 16000}
    assert ah.follow_up(v2_request, _responses(["no verdict"])[0], v20) is None
    with pytest.raises(ValueError, match="evals.arena_hard.version"):
        ah.get_version("v0.2")


@pytest.mark.parametrize("games", [("A>B", "B>>A"), ("A>>B", None), (None, "A=B"), (None, None), ("B>A", "A<B")])
def test_v01_drops_only_the_game_without_a_verdict(games):
    """v0.1 show_result.py weights a game without a scorable verdict 0 and keeps the other; v2.0 drops the row."""
    row = judgment("sft", *games)
    winners = upstream_v01_battle_weights(row["games"])
    expected = [{"model_b": 1.0, "model_a": 0.0, "tie": 0.5}[w] for w in winners]
    v01 = ah.judgments_to_battles([row], version=ah.VERSIONS["v0.1"])
    assert v01["scores"].tolist() == expected
    v20 = ah.judgments_to_battles([row], version=ah.VERSIONS["v2.0"])
    if None in games:
        assert v20.empty
    else:
        assert len(v20) == sum(3 if "<<" in g or ">>" in g else 1 for g in games)


def test_fit_bt_on_grouped_equal_rows_is_the_fit_on_every_row():
    """Bug guarded: collapsing one answer's battles (equal feature rows) into one weighted row changing the MLE."""
    rng = np.random.default_rng(3)
    names = [f"m{i}" for i in range(5)]
    answers = pd.DataFrame({"model": rng.choice(names, 60), "length": rng.normal(size=60)})
    battles = answers.loc[answers.index.repeat(rng.integers(1, 4, size=60))]   # 1-3 battles per answer
    features = np.hstack([ah.model_indicators(battles["model"].to_numpy(), names), battles[["length"]].to_numpy()])
    outcomes = rng.choice([0.0, 0.5, 1.0], size=len(battles))
    groups = battles.index.to_numpy()
    assert len(np.unique(groups)) < len(battles)
    assert ah.fit_bt(features, outcomes, groups) == pytest.approx(ah.fit_bt(features, outcomes), abs=1e-6)
