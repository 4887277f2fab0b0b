"""MT-Bench: two-turn questions, the second turn asked after the model's own first answer (FastChat
``gen_model_answer``), each turn graded alone 1-10 by the judge with FastChat's single-grading prompts, against the
reference answer for math, reasoning and coding questions (``evals/protocols/mt_bench_protocol.py``). Scores: turn 1, turn 2, overall.

Files (FastChat's formats): generations ``mt_bench.jsonl`` = ``{question_id, answer_id, model_id,
choices: [{index, turns}], tstamp}``; judgments ``mt_bench.jsonl`` = ``model_judgment/<judge>_single.jsonl`` rows
``{question_id, model, judge: [judge, prompt], user_prompt, judgment, score, turn, tstamp}`` + prompt hash, latency,
cache hit. Config block ``evals.mt_bench``: ``judge``, ``generation``, ``published``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from evals.registry import AnswerRounds, ChatSuite, Column, generation_settings, register_suite
from evals.suites import GOLD, gold_metrics, metric, need, read_items
from pipeline.io import InputError, read_jsonl

QUESTIONS = "mt_bench_questions"
REFERENCE = "mt_bench_reference"    # FastChat's reference_answer/gpt-4.jsonl (the micro world writes its own)
TURNS = (1, 2)


def gold_item(question: Mapping[str, Any], items: Mapping[str, dict] | None) -> dict | None:
    """The micro world's gold item of a question (``item_id`` is our field in the question file)."""
    if not items:
        return None
    item = items.get(question.get("item_id", ""))
    if item is None:
        raise InputError(f"mt_bench question {question['question_id']}: no gold item {question.get('item_id')!r}")
    return item


@register_suite
class MTBench(ChatSuite):
    name = "mt_bench"
    version = "2"
    generation_file = "mt_bench.jsonl"
    generation_schema = "mt_bench_answer"
    judgment_schema = "mt_bench_judgment"
    generation_data = (QUESTIONS,)
    judge_data = (QUESTIONS, REFERENCE)
    score_data = (QUESTIONS,)          # the micro world's gold items are found through the questions' item_id
    judge_format = "single_mt_bench"
    # With `evals.mt_bench.fastchat_sampling: true` (real studies), FastChat's gen_model_answer settings: the
    # temperature of the question's category (0.7 writing/roleplay, 0.1 stem/humanities, 0 otherwise, 0.7 for an
    # unknown category) and max_new_token 1024. Otherwise (the micro world's own categories) the `generation:` block.
    generation: dict[str, Any] = {}

    def columns(self, settings: Mapping[str, Any]) -> list[Column]:
        return [
            Column("turn_1", "MT-Bench T1", digits=2),
            Column("turn_2", "MT-Bench T2", digits=2),
            Column("overall", "MT-Bench", digits=2, paper={"table4": "MT-Bench"}),
        ]

    def caption(self, settings: Mapping[str, Any]) -> str:
        sampling = ("answers sampled as FastChat (temperature per category, at most 1024 new tokens)"
                    if settings.get("fastchat_sampling") else "answers with the study's generation settings")
        return ("MT-Bench: FastChat single grading (1-10) of each turn, the reference answer (FastChat's "
                "reference_answer/gpt-4.jsonl) shown for math, reasoning and coding; " + sampling +
                "; overall = mean over all graded turns, standard error over judgments.")

    def answer(self, data: Mapping[str, Path], model: str, settings: Mapping[str, Any]) -> AnswerRounds:
        questions = read_jsonl(need(data, QUESTIONS, self.name), schema="mt_bench_question")
        first_turns = [[{"role": "user", "content": q["turns"][0]}] for q in questions]
        first = yield from _by_sampling(self, settings, questions, first_turns)
        second = yield from _by_sampling(
            self, settings, questions,
            [conv + [{"role": "assistant", "content": a}, {"role": "user", "content": q["turns"][1]}]
             for conv, a, q in zip(first_turns, first, questions)])
        now = time.time()
        return [{"question_id": q["question_id"], "answer_id": f"{model}-{q['question_id']}", "model_id": model,
                 "choices": [{"index": 0, "turns": [a1, a2]}], "tstamp": now}
                for q, a1, a2 in zip(questions, first, second)]

    def judge(self, judge, model: str, generations: Path, data: Mapping[str, Path],
              settings: Mapping[str, Any]) -> list[dict]:
        from evals.protocols import mt_bench_protocol as mb
        from evals.judge import with_oracle

        questions = {q["question_id"]: q for q in read_jsonl(need(data, QUESTIONS, self.name),
                                                             schema="mt_bench_question")}
        answers = read_jsonl(generations, schema=self.generation_schema)
        references = {r["question_id"]: r for r in read_jsonl(need(data, REFERENCE, self.name),
                                                              schema="mt_bench_answer")}
        items = read_items(data.get(GOLD))
        requests, keys = [], []
        for i, answer in enumerate(answers):
            question = questions.get(answer["question_id"])
            if question is None:
                raise InputError(f"{generations}, row {i + 1}: question_id {answer['question_id']} not in the questions")
            item = gold_item(question, items)
            for turn in TURNS:
                try:
                    request = mb.render_single_judge_request(
                        question, answer, turn, key=f"{self.name}/{model}/{question['question_id']}/{turn}",
                        reference=references.get(question["question_id"]))
                except ValueError as exc:
                    raise InputError(f"{need(data, REFERENCE, self.name)}: {exc}") from None
                shown = [mb.answer_turns(answer)[turn - 1]]
                requests.append(with_oracle(request, self.judge_format, item["golds"][turn - 1] if item else None,
                                            shown))
                keys.append((question, answer, turn))
        responses = judge.judge(requests)
        now = time.time()
        return [mb.judgment_record(question, answer, turn, request, response, tstamp=now)
                for (question, answer, turn), request, response in zip(keys, requests, responses)]

    def score(self, model: str, generations: Path, judgments: Path | None, data: Mapping[str, Path],
              settings: Mapping[str, Any], world: Mapping[str, Any] | None) -> dict:
        import pandas as pd

        from evals.protocols import mt_bench_protocol as mb

        rows, answers = self.read_judged(generations, judgments)
        result = mb.score_mt_bench(pd.DataFrame(rows), model=model)
        metrics = {name: metric(result[name]["mean"], result[name]["se"], result[name]["n"])
                   for name in ("turn_1", "turn_2", "overall")}
        metrics["n_unparsable"] = metric(result["n_unparsable"], None, len(rows))
        lengths = pd.Series([len(t) for a in answers for t in mb.answer_turns(a)], dtype=float)
        metrics["mean_length"] = metric(lengths.mean(), lengths.sem() if len(lengths) > 1 else None, len(lengths))
        items = read_items(data.get(GOLD))
        if world is not None and items:
            questions = {q["question_id"]: q for q in read_jsonl(need(data, QUESTIONS, self.name),
                                                                 schema="mt_bench_question")}
            for turn in TURNS:
                triples = []
                for answer in answers:
                    item = gold_item(questions[answer["question_id"]], items)
                    triples.append((item["family"], mb.answer_turns(answer)[turn - 1], item["golds"][turn - 1]))
                metrics.update(gold_metrics(triples, world["gold_reward"], suffix=f"_turn_{turn}"))
        return {"suite": self.name, "version": self.version, "model": model, "n": len(answers),
                "judges": self.judges(rows), "mean_length": float(lengths.mean()), "metrics": metrics}


def _by_sampling(suite: ChatSuite, settings: Mapping[str, Any], questions: list[dict],
                 conversations: list[list[dict]]) -> AnswerRounds:
    """One generation round per distinct sampling setting (FastChat's per-category temperature when
    ``fastchat_sampling``), answers returned in question order."""
    from evals.protocols import mt_bench_protocol as mb

    base = generation_settings(suite, settings)
    if not settings.get("fastchat_sampling"):
        return (yield conversations, base)
    groups: dict[float, list[int]] = {}
    for i, q in enumerate(questions):
        groups.setdefault(mb.answer_temperature(q["category"]), []).append(i)
    answers: list[str | None] = [None] * len(questions)
    for temperature, indices in sorted(groups.items()):
        got = yield [conversations[i] for i in indices], {**base, "temperature": temperature,
                                                          "max_new_tokens": mb.MAX_NEW_TOKEN}
        for i, a in zip(indices, got):
            answers[i] = a
    return answers
