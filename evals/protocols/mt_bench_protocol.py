"""MT-Bench single-answer grading, offline, as FastChat's ``llm_judge`` does it.

Upstream: lm-sys/FastChat @ 0e6d3e4beaab66f4d3f93db72541a4abab8af28d (see ``templates/mt_bench/SOURCE.md``).
Hand-written, not imported: fschat's ``llm_judge.common`` pulls its API clients and model adapters at import
time and calls the judge itself; we need only its prompts, regexes and averaging, as pure functions.

Formats (upstream's):
- question: ``{question_id, category, turns: [t1, t2], reference?: [r1, r2]}``
- answer: ``{question_id, answer_id, model_id, choices: [{index: 0, turns: [a1, a2]}], tstamp}``
- judgment row: ``{question_id, model, judge: [judge_model, prompt_name], user_prompt, judgment, score, turn, tstamp}``

Example::

    request = render_single_judge_request(question, answer, turn=1, key="mt_bench/81/1")
    response = judge.judge([request])[0]
    row = judgment_record(question, answer, 1, request, response)
    score_mt_bench(pandas.DataFrame(rows))
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from evals.judges.base import JudgeRequest, JudgeResponse

TEMPLATE_DIR = Path(__file__).parent.parent / "templates" / "mt_bench"
JUDGE_PROMPTS_FILE = TEMPLATE_DIR / "judge_prompts.jsonl"

# fastchat/llm_judge/common.py: categories that need reference answers.
NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")
# fastchat/llm_judge/common.py: extract scores from judgments (raw strings of upstream's patterns).
ONE_SCORE_PATTERN = re.compile(r"\[\[(\d+\.?\d*)\]\]")
ONE_SCORE_PATTERN_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
# fastchat/llm_judge/common.py run_judge_single: the rating of an unparsable judgment.
UNPARSABLE_SCORE = -1
# fastchat/llm_judge/common.py temperature_config and gen_model_answer.py get_model_answers: the answer's sampling
# temperature per category (0.7 for a category not listed) and --max-new-token's default.
TEMPERATURE_CONFIG = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
                      "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
DEFAULT_TEMPERATURE = 0.7
MAX_NEW_TOKEN = 1024
# fastchat/llm_judge/common.py run_judge_single: chat_completion_openai(model, conv, temperature=0, max_tokens=2048).
JUDGE_SAMPLING = {"temperature": 0, "max_tokens": 2048}
# fastchat/llm_judge/gen_judgment.py: --ref-answer ... data/mt_bench/reference_answer/gpt-4.jsonl (judge model gpt-4).
REFERENCE_MODEL = "gpt-4"
# fastchat/llm_judge/gen_judgment.py make_judge_single: judge prompt per (needs reference, turn).
SINGLE_PROMPTS = {
    (False, 1): "single-v1",
    (True, 1): "single-math-v1",
    (False, 2): "single-v1-multi-turn",
    (True, 2): "single-math-v1-multi-turn",
}


@lru_cache(maxsize=None)
def load_judge_prompts(path: str | Path = JUDGE_PROMPTS_FILE) -> dict[str, dict[str, str]]:
    """Upstream ``load_judge_prompts``: prompt name -> ``{name, type, system_prompt, prompt_template, ...}``."""
    prompts = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                prompts[record["name"]] = record
    return prompts


def needs_reference(category: str) -> bool:
    """Whether upstream grades this category against a reference answer (``NEED_REF_CATS``)."""
    return category in NEED_REF_CATS


def select_prompt_name(category: str, turn: int) -> str:
    """The upstream judge prompt for a category and turn (``make_judge_single``)."""
    if turn not in (1, 2):
        raise ValueError(f"MT-Bench has turns 1 and 2, got {turn}")
    return SINGLE_PROMPTS[(needs_reference(category), turn)]


def answer_temperature(category: str) -> float:
    """FastChat's sampling temperature for a question's category (``gen_model_answer.get_model_answers``)."""
    return TEMPERATURE_CONFIG.get(category, DEFAULT_TEMPERATURE)


def answer_turns(answer: Mapping[str, Any]) -> list[str]:
    """The answer's turns (upstream reads ``answer["choices"][0]["turns"]``)."""
    return list(answer["choices"][0]["turns"])


def reference_turns(reference: Any) -> list[str] | None:
    """Reference turns of ``reference``: an answer in upstream format (a row of ``reference_answer/gpt-4.jsonl``)
    or a list of turns. A question's own ``reference`` field is never read (FastChat does not read it)."""
    if reference is None:
        return None
    if isinstance(reference, Mapping):
        return answer_turns(reference)
    return list(reference)


def format_user_prompt(
    template: str, question: Mapping[str, Any], answer: Mapping[str, Any], turn: int, ref: Sequence[str] | None
) -> str:
    """Fill the prompt template with the keyword arguments of upstream ``run_judge_single``."""
    turns, answers = question["turns"], answer_turns(answer)
    kwargs: dict[str, str] = {}
    if ref is not None:
        kwargs["ref_answer_1"] = ref[0]
        if turn == 2:
            kwargs["ref_answer_2"] = ref[1]
    if turn == 2:
        return template.format(
            question_1=turns[0], question_2=turns[1], answer_1=answers[0], answer_2=answers[1], **kwargs
        )
    return template.format(question=turns[0], answer=answers[0], **kwargs)


def render_single_judge_request(
    question: Mapping[str, Any],
    answer: Mapping[str, Any],
    turn: int,
    key: str,
    reference: Any = None,
) -> JudgeRequest:
    """The judge call for one (question, answer, turn): upstream's system prompt and user prompt as chat messages.

    ``reference``: the question's row of FastChat's ``reference_answer/gpt-4.jsonl`` (or a list of turns).
    Required for the categories in ``NEED_REF_CATS`` (upstream asserts it in ``check_data``): a question without
    one is a ValueError naming it. The judge is called as ``run_judge_single`` does (temperature 0, max_tokens
    2048).
    """
    category = question["category"]
    name = select_prompt_name(category, turn)
    prompt = load_judge_prompts()[name]
    ref = reference_turns(reference) if needs_reference(category) else None
    if needs_reference(category) and (ref is None or len(ref) < turn):
        raise ValueError(f"MT-Bench question {question['question_id']} ({category}) has no reference answer for "
                         f"turn {turn} in the reference file (FastChat's reference_answer/gpt-4.jsonl)")
    user_prompt = format_user_prompt(prompt["prompt_template"], question, answer, turn, ref)
    messages = [
        {"role": "system", "content": prompt["system_prompt"]},
        {"role": "user", "content": user_prompt},
    ]
    oracle = {
        "suite": "mt_bench",
        "output_format": prompt["output_format"],
        "prompt_name": name,
        "turn": turn,
        "question": dict(question),
        "answer": answer_turns(answer)[turn - 1],
        "reference": ref,
    }
    return JudgeRequest(key=key, messages=messages, oracle=oracle, sampling=dict(JUDGE_SAMPLING))


def parse_rating(text: str) -> float:
    """Upstream ``run_judge_single``: first ``[[k]]``, else first ``[k]``, ``ast.literal_eval``'d; -1 if neither."""
    match = re.search(ONE_SCORE_PATTERN, text) or re.search(ONE_SCORE_PATTERN_BACKUP, text)
    if not match:
        return float(UNPARSABLE_SCORE)
    try:  # upstream crashes on e.g. "[[07]]" (a leading zero is a SyntaxError for literal_eval): unparsable here
        return float(ast.literal_eval(match.groups()[0]))
    except (SyntaxError, ValueError):
        return float(UNPARSABLE_SCORE)


def judgment_record(
    question: Mapping[str, Any],
    answer: Mapping[str, Any],
    turn: int,
    request: JudgeRequest,
    response: JudgeResponse,
    tstamp: float | None = None,
) -> dict[str, Any]:
    """One judgment row in upstream's single format (``play_a_match_single``) plus our judge bookkeeping."""
    return {
        "question_id": question["question_id"],
        "model": answer["model_id"],
        "judge": [response.judge_id, select_prompt_name(question["category"], turn)],
        "user_prompt": request.messages[-1]["content"],
        "judgment": response.text,
        "score": parse_rating(response.text),
        "turn": turn,
        "tstamp": time.time() if tstamp is None else tstamp,
        "prompt_hash": response.prompt_hash,
        "latency_s": response.latency_s,
        "cache_hit": response.cache_hit,
    }


def mean_and_se(scores: pd.Series) -> dict[str, float]:
    """Mean, standard error of the mean (sample sd / sqrt(n)) and n; NaN where undefined."""
    n = int(scores.size)
    mean = float(scores.mean()) if n else math.nan
    se = float(scores.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": mean, "se": se, "n": n}


def score_mt_bench(judgments: pd.DataFrame, model: str | None = None) -> dict[str, Any]:
    """Upstream ``display_result_single`` for one model: drop ``score == -1``, then turn-1, turn-2 and overall means.

    The overall score is the mean over all kept judgments (upstream's "Average"), not the mean of the two turn
    means. Standard errors treat judgments as independent. ``model`` picks one model when the frame has several.
    """
    frame = judgments if model is None else judgments[judgments["model"] == model]
    if frame["model"].nunique() > 1:
        raise ValueError(f"judgments of several models {sorted(frame['model'].unique())}: pass model=")
    unparsable = frame["score"] == UNPARSABLE_SCORE
    kept = frame[~unparsable]
    return {
        "turn_1": mean_and_se(kept.loc[kept["turn"] == 1, "score"].astype(float)),
        "turn_2": mean_and_se(kept.loc[kept["turn"] == 2, "score"].astype(float)),
        "overall": mean_and_se(kept["score"].astype(float)),
        "n_unparsable": int(unparsable.sum()),
    }
