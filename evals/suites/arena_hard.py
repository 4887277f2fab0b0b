"""Arena-Hard-Auto: each prompt answered once, judged pairwise against a fixed baseline in both orders (game 1:
baseline as A, game 2: model as A; arena-hard-auto v2.0's prompts and verdict regexes, ``evals/protocols/arena_hard_protocol.py``),
scored as the Bradley-Terry win rate against the baseline with a bootstrap 95 % CI. The style-controlled score
fits every model's battles together (style coefficients are shared), so it is a cross-model step: the
``leaderboard`` writes ``scores/leaderboard/arena_hard.json``.

Files (arena-hard-auto v2.0's formats): generations ``arena_hard.jsonl`` = ``{uid, ans_id, model, messages,
tstamp, metadata}`` (the assistant content is ``{answer: ...}``, ``metadata`` the style features); judgments
``arena_hard.jsonl`` = ``{uid, category, judge, model, baseline, games: [{score, judgment: {answer}, prompt, ...}]}``
with each game's judge id, prompt hash, latency, cache hit and number of judge calls. Config block
``evals.arena_hard``: ``version`` (``v0.1``, the report's, or ``v2.0``: judge budget, second call, null handling,
verdict parsing and answer budget of that code base, see ``evals/protocols/arena_hard_protocol.py``), ``judge``,
``bootstrap_rounds``, ``control_features``, ``generation``, ``published``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from evals.registry import AnswerRounds, ChatSuite, Column, generation_settings, register_suite
from evals.suites import GOLD, gold_metrics, metric, need, read_items
from pipeline.io import InputError, read_jsonl

QUESTIONS = "arena_hard_questions"
BASELINE = "arena_hard_baseline"
DEFAULT_ROUNDS = 100


def _baseline(data: Mapping[str, Path]) -> tuple[str, dict[str, dict]]:
    rows = read_jsonl(need(data, BASELINE, "arena_hard"), schema="arena_hard_answer")
    names = {r["model"] for r in rows}
    if len(names) != 1:
        raise InputError(f"{data[BASELINE]}: answers of {sorted(names)}, expected one baseline model")
    return names.pop(), {r["uid"]: r for r in rows}


@register_suite
class ArenaHard(ChatSuite):
    name = "arena_hard"
    version = "2"
    generation_file = "arena_hard.jsonl"
    generation_schema = "arena_hard_answer"
    judgment_schema = "arena_hard_judgment"
    generation_data = (QUESTIONS,)
    judge_data = (QUESTIONS, BASELINE)
    score_data = (BASELINE,)
    judge_format = "pairwise_arena_hard"
    has_leaderboard = True
    # v0.1's gen_answer_config (temperature 0, max_tokens 4096) comes with `version: v0.1`; v2.0 samples with each
    # model's own settings: the config's `generation:` block.
    generation: dict[str, Any] = {}

    def columns(self, settings: Mapping[str, Any]) -> list[Column]:
        return [
            Column("score", "Arena-Hard (%)", interval=True, paper={"table4": "Arena-Hard"}),
            Column("style_score", "Arena-Hard SC (%)", interval=True, leaderboard=True),
        ]

    def caption(self, settings: Mapping[str, Any]) -> str:
        import evals.protocols.arena_hard_protocol as ah

        rounds = settings.get("bootstrap_rounds", DEFAULT_ROUNDS)
        features = "+".join(settings.get("control_features", ah.CONTROL_FEATURES))
        version = ah.get_version(settings.get("version"))
        protocol = ("a second judge call when the first has no verdict, a game without a verdict dropped alone"
                    if version.name == "v0.1" else "one judge call, a prompt with a null game dropped")
        return (f"Arena-Hard {version.name} (arena-hard-auto @ {version.upstream_commit[:8]}: judge max_tokens "
                f"{version.judge_sampling['max_tokens']}, {protocol}): Bradley-Terry win rate (%) against the fixed "
                f"baseline from both game orders (strong verdicts x{ah.WEIGHT}), [95 % bootstrap CI, {rounds} "
                f"rounds]; SC = style-controlled ({features}), all models fitted together.")

    def answer(self, data: Mapping[str, Path], model: str, settings: Mapping[str, Any]) -> AnswerRounds:
        from evals.protocols.arena_hard_protocol import text_style_metadata

        questions = read_jsonl(need(data, QUESTIONS, self.name), schema="arena_hard_question")
        prompts = [[{"role": "user", "content": q["prompt"]}] for q in questions]
        from evals.protocols.arena_hard_protocol import get_version

        budget = get_version(settings.get("version")).answer_generation
        answers = yield prompts, {**budget, **generation_settings(self, settings)}
        now = time.time()
        return [{"uid": q["uid"], "ans_id": f"{model}-{q['uid']}", "model": model,
                 "messages": prompt + [{"role": "assistant", "content": {"answer": a}}], "tstamp": now,
                 "metadata": text_style_metadata(a)}
                for q, prompt, a in zip(questions, prompts, answers)]

    def judge(self, judge, model: str, generations: Path, data: Mapping[str, Path],
              settings: Mapping[str, Any]) -> list[dict]:
        from evals.protocols import arena_hard_protocol as ah
        from evals.judge import with_oracle

        questions = {q["uid"]: q for q in read_jsonl(need(data, QUESTIONS, self.name), schema="arena_hard_question")}
        _, baseline = _baseline(data)
        answers = read_jsonl(generations, schema=self.generation_schema)
        items = read_items(data.get(GOLD))
        version = ah.get_version(settings.get("version"))
        games, triples = [], []
        for i, answer in enumerate(answers):
            uid = answer["uid"]
            if uid not in questions or uid not in baseline:
                raise InputError(f"{generations}, row {i + 1}: uid {uid!r} not in the questions and the baseline")
            question, base = questions[uid], baseline[uid]
            gold = None
            if items:
                if uid not in items:
                    raise InputError(f"{generations}, row {i + 1}: no gold item {uid!r}")
                gold = items[uid]["golds"][0]
            pair = ah.render_games(question, answer, base, key=f"{self.name}/{model}/{uid}", version=version)
            shown = [[ah.answer_text(base), ah.answer_text(answer)], [ah.answer_text(answer), ah.answer_text(base)]]
            games += [with_oracle(request, self.judge_format, gold, order) for request, order in zip(pair, shown)]
            triples.append((question, answer, base))
        calls = [[response] for response in judge.judge(games)]
        again = [(i, ah.follow_up(games[i], calls[i][0], version)) for i in range(len(games))]
        again = [(i, request) for i, request in again if request is not None]
        for (i, _), response in zip(again, judge.judge([request for _, request in again]) if again else []):
            calls[i].append(response)
        return [ah.judgment_record(question, answer, base, games[2 * k: 2 * k + 2], calls[2 * k: 2 * k + 2], version)
                for k, (question, answer, base) in enumerate(triples)]

    def score(self, model: str, generations: Path, judgments: Path | None, data: Mapping[str, Path],
              settings: Mapping[str, Any], world: Mapping[str, Any] | None) -> dict:
        import pandas as pd

        from evals.protocols import arena_hard_protocol as ah

        rows, answers = self.read_judged(generations, judgments)
        baseline_name, _ = _baseline(data)
        version = ah.get_version(settings.get("version"))
        battles = ah.judgments_to_battles(rows, version=version)
        if battles.empty:
            raise InputError(f"{judgments}: no judgment with a parsed game")
        table = ah.bradley_terry_scores(battles, baseline_name, num_rounds=settings.get("bootstrap_rounds",
                                                                                          DEFAULT_ROUNDS))
        row = table.loc[model]
        n_null = sum(ah.is_null_judgment(r["games"]) for r in rows)
        null_games = sum(g.get("score") is None for r in rows for g in r["games"])
        second_calls = sum(g.get("attempts", 1) > 1 for r in rows for g in r["games"])
        metrics = {
            "score": metric(row["score"], None, len(rows) - n_null, lower=float(row["lower"]),
                            upper=float(row["upper"]), n_battles=int(row["n_battles"]), ci=ah.CI,
                            protocol=version.name),
            "battle_win_rate": metric(100 * battles["scores"].mean(), 100 * battles["scores"].sem(), len(battles)),
            "n_unparsable_judgments": metric(n_null, None, len(rows)),
            "n_unparsable_games": metric(null_games, None, 2 * len(rows)),
            "n_second_calls": metric(second_calls, None, 2 * len(rows)),
        }
        texts = [ah.answer_text(a) for a in answers]
        lengths = pd.Series([len(t) for t in texts], dtype=float)
        tokens = pd.Series([a["metadata"]["token_len"] for a in answers], dtype=float)
        metrics["mean_length"] = metric(lengths.mean(), lengths.sem() if len(lengths) > 1 else None, len(lengths))
        metrics["mean_token_len"] = metric(tokens.mean(), tokens.sem() if len(tokens) > 1 else None, len(tokens))
        items = read_items(data.get(GOLD))
        if world is not None and items:
            triples = [(items[a["uid"]]["family"], t, items[a["uid"]]["golds"][0]) for a, t in zip(answers, texts)]
            metrics.update(gold_metrics(triples, world["gold_reward"]))
        return {"suite": self.name, "version": self.version, "model": model, "n": len(answers),
                "judges": self.judges(rows), "mean_length": float(lengths.mean()), "metrics": metrics}

    def leaderboard(self, generations: Mapping[str, Path], judgments: Mapping[str, Path], data: Mapping[str, Path],
                    settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """Every model's battles in one Bradley-Terry fit, plain and style-controlled (upstream v2.0
        ``show_result.py --style-control``), with the same bootstrap rounds for both."""
        import pandas as pd

        from evals.protocols import arena_hard_protocol as ah

        baseline_name, baseline = _baseline(data)
        metadata = {baseline_name: {uid: ah.answer_style_metadata(a) for uid, a in baseline.items()}}
        frames = []
        for model, path in judgments.items():
            answers = read_jsonl(generations[model], schema=self.generation_schema)
            metadata[model] = {a["uid"]: ah.answer_style_metadata(a) for a in answers}
            frames.append(ah.judgments_to_battles(read_jsonl(path, schema=self.judgment_schema),
                                                  version=ah.get_version(settings.get("version"))))
        battles = pd.concat(frames, ignore_index=True)
        features = tuple(settings.get("control_features", ah.CONTROL_FEATURES))
        table = ah.bradley_terry_scores(battles, baseline_name, num_rounds=settings.get("bootstrap_rounds",
                                                                                          DEFAULT_ROUNDS),
                                        seed=seed, style_metadata=metadata, control_features=features)
        models = {}
        for model in judgments:
            row = table.loc[model]
            models[model] = {
                "score": metric(row["score"], None, int(row["n_battles"]), lower=float(row["lower"]),
                                upper=float(row["upper"]), ci=ah.CI),
                "style_score": metric(row["style_score"], None, int(row["n_battles"]),
                                      lower=float(row["style_lower"]), upper=float(row["style_upper"]), ci=ah.CI),
            }
        return {"suite": self.name, "version": self.version, "baseline": baseline_name,
                "control_features": list(features), "style_coefficients": table.attrs["style_coefficients"],
                "models": models}
