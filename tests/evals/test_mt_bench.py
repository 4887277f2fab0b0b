"""MT-Bench single-answer grading against FastChat's llm_judge (lm-sys/FastChat @ 0e6d3e4b)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from evals.protocols import mt_bench_protocol as mt_bench
from evals.judges.base import JudgeRequest, JudgeResponse

WRITING = {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Make it rhyme."]}
MATH = {
    "question_id": 111,
    "category": "math",
    "turns": ["What is 2+2?", "And 3+3?"],
    "reference": ["a question field FastChat never reads", "nor this"],
}
# The question's row of FastChat's data/mt_bench/reference_answer/gpt-4.jsonl (its answer format).
MATH_REFERENCE = {"question_id": 111, "answer_id": "ref", "model_id": "gpt-4",
                  "choices": [{"index": 0, "turns": ["4", "6"]}], "tstamp": 0.0}
ANSWER = {
    "question_id": 81,
    "answer_id": "abc",
    "model_id": "sft",
    "choices": [{"index": 0, "turns": ["First answer.", "Second answer."]}],
    "tstamp": 0.0,
}


def test_judge_prompts_file_is_upstreams():
    prompts = mt_bench.load_judge_prompts()
    assert set(mt_bench.SINGLE_PROMPTS.values()) <= set(prompts)
    assert all(prompts[name]["type"] == "single" for name in mt_bench.SINGLE_PROMPTS.values())
    assert all(prompts[name]["output_format"] == "[[rating]]" for name in mt_bench.SINGLE_PROMPTS.values())


@pytest.mark.parametrize(
    ("category", "turn", "name"),
    [
        ("writing", 1, "single-v1"),
        ("writing", 2, "single-v1-multi-turn"),
        ("math", 1, "single-math-v1"),
        ("reasoning", 2, "single-math-v1-multi-turn"),
        ("coding", 1, "single-math-v1"),
        ("stem", 2, "single-v1-multi-turn"),
    ],
)
def test_prompt_selection_follows_make_judge_single(category, turn, name):
    assert mt_bench.select_prompt_name(category, turn) == name


@pytest.mark.parametrize(("question", "turn"), [(WRITING, 1), (WRITING, 2), (MATH, 1), (MATH, 2)])
def test_every_template_renders(question, turn):
    request = mt_bench.render_single_judge_request(question, ANSWER, turn, key=f"mt_bench/{turn}",
                                                   reference=MATH_REFERENCE)
    assert isinstance(request, JudgeRequest)
    assert [m["role"] for m in request.messages] == ["system", "user"]
    user = request.messages[1]["content"]
    assert "{" not in user and "}" not in user
    assert question["turns"][turn - 1] in user and ANSWER["choices"][0]["turns"][turn - 1] in user
    if question["category"] == "math":
        assert all(ref in user for ref in MATH_REFERENCE["choices"][0]["turns"][:turn])
        assert "never reads" not in user
    assert request.oracle["turn"] == turn and request.oracle["answer"] == ANSWER["choices"][0]["turns"][turn - 1]


def test_turn_one_prompt_is_exactly_upstreams():
    request = mt_bench.render_single_judge_request(WRITING, ANSWER, 1, key="k")
    assert request.messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert request.messages[1]["content"] == (
        "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI "
        "assistant to the user question displayed below. Your evaluation should consider factors such as the "
        "helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your "
        "evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, "
        'you must rate the response on a scale of 1 to 10 by strictly following this format: "[[rating]]", for '
        'example: "Rating: [[5]]".\n\n[Question]\nWrite a poem.\n\n[The Start of Assistant\'s Answer]\n'
        "First answer.\n[The End of Assistant's Answer]"
    )


def test_turn_two_math_prompt_has_both_references_and_conversation():
    request = mt_bench.render_single_judge_request(MATH, ANSWER, 2, key="k", reference=MATH_REFERENCE)
    assert request.messages[0]["content"].startswith("Please act as an impartial judge")
    assert request.messages[1]["content"] == (
        "<|The Start of Reference Answer|>\n\n### User:\nWhat is 2+2?\n\n### Reference answer:\n4\n\n"
        "### User:\nAnd 3+3?\n\n### Reference answer:\n6\n\n<|The End of Reference Answer|>\n\n\n"
        "<|The Start of Assistant A's Conversation with User|>\n\n### User:\nWhat is 2+2?\n\n### Assistant A:\n"
        "First answer.\n\n### User:\nAnd 3+3?\n\n### Assistant A:\nSecond answer.\n\n"
        "<|The End of Assistant A's Conversation with User|>"
    )


def test_reference_comes_from_the_gpt4_reference_file_not_the_question():
    """FastChat (gen_judgment.py) reads data/mt_bench/reference_answer/gpt-4.jsonl, never question["reference"]."""
    request = mt_bench.render_single_judge_request(MATH, ANSWER, 1, key="k", reference=MATH_REFERENCE)
    assert "[The Start of Reference Answer]\n4\n[The End of Reference Answer]" in request.messages[1]["content"]
    assert "never reads" not in request.messages[1]["content"]


def test_reference_categories_without_reference_fail_naming_the_question():
    """Question 123 (coding) has no reference on the hub's question file: judging must stop naming it, not crash
    later or grade without one."""
    with pytest.raises(ValueError, match="question 111 .math. has no reference answer for turn 1"):
        mt_bench.render_single_judge_request(MATH, ANSWER, 1, key="k")


@pytest.mark.parametrize(("category", "temperature"), [
    ("writing", 0.7), ("roleplay", 0.7), ("extraction", 0.0), ("math", 0.0), ("coding", 0.0), ("reasoning", 0.0),
    ("stem", 0.1), ("humanities", 0.1), ("arena-hard-200", 0.7), ("add", 0.7)])
def test_answer_temperature_is_fastchats(category, temperature):
    """FastChat @ 0e6d3e4b fastchat/llm_judge/common.py temperature_config and gen_model_answer.py
    (`temperature_config[category]` if listed else 0.7; --max-new-token default 1024); judge call temperature 0,
    max_tokens 2048 (common.py run_judge_single)."""
    assert mt_bench.answer_temperature(category) == temperature
    assert mt_bench.MAX_NEW_TOKEN == 1024
    request = mt_bench.render_single_judge_request(WRITING, ANSWER, 1, key="k")
    assert request.sampling == {"temperature": 0, "max_tokens": 2048}


def test_general_categories_ignore_references():
    question = dict(WRITING, reference=["should not appear", "nor this"])
    request = mt_bench.render_single_judge_request(question, ANSWER, 2, key="k")
    assert "should not appear" not in request.messages[1]["content"]


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("The answer is fine. Rating: [[8]]", 8.0),
        ("Rating: [[8.5]]", 8.5),
        ("Rating: [[10]]", 10.0),
        ("Rating: [[7.]]", 7.0),
        ("Rating: [[3]]. On reflection: [[9]]", 3.0),  # re.search: the first match
        ("Rating: [7]", 7.0),  # the backup pattern
        ("See [5] above. Rating: [[6]]", 6.0),  # the double-bracket pattern wins over an earlier [k]
        ("Rating: 7/10", -1.0),
        ("Rating: [[seven]]", -1.0),
        ("Rating: [[-3]]", -1.0),
        ("", -1.0),
    ],
)
def test_parse_rating_follows_upstream_regexes(text, rating):
    assert mt_bench.parse_rating(text) == rating


def test_judgment_record_has_upstream_fields():
    request = mt_bench.render_single_judge_request(WRITING, ANSWER, 2, key="k")
    response = JudgeResponse(key="k", judge_id="gpt-4", prompt_hash="h", text="Good. Rating: [[9]]", latency_s=0.1,
                             cache_hit=False)  # fmt: skip
    row = mt_bench.judgment_record(WRITING, ANSWER, 2, request, response, tstamp=1.0)
    upstream_fields = {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"}
    assert upstream_fields <= set(row)
    assert row["judge"] == ["gpt-4", "single-v1-multi-turn"]
    assert (row["question_id"], row["model"], row["score"], row["turn"]) == (81, "sft", 9.0, 2)
    assert row["user_prompt"] == request.messages[1]["content"]


def judgments_frame() -> pd.DataFrame:
    rows = [
        ("sft", 1, 8.0), ("sft", 1, 6.0), ("sft", 1, -1.0),
        ("sft", 2, 4.0), ("sft", 2, 5.0), ("sft", 2, 9.0),
    ]  # fmt: skip
    return pd.DataFrame([{"question_id": i, "model": m, "turn": t, "score": s} for i, (m, t, s) in enumerate(rows)])


def test_score_excludes_unparsable_and_reports_se():
    result = mt_bench.score_mt_bench(judgments_frame())
    assert result["n_unparsable"] == 1
    assert result["turn_1"]["mean"] == pytest.approx(7.0) and result["turn_1"]["n"] == 2
    assert result["turn_1"]["se"] == pytest.approx(math.sqrt(2.0) / math.sqrt(2))
    assert result["turn_2"]["mean"] == pytest.approx(6.0) and result["turn_2"]["n"] == 3
    assert result["turn_2"]["se"] == pytest.approx(math.sqrt(7.0) / math.sqrt(3))
    assert result["overall"]["mean"] == pytest.approx(32.0 / 5) and result["overall"]["n"] == 5


def test_score_matches_upstream_display_result_single():
    frame = judgments_frame()
    # fastchat/llm_judge/show_result.py display_result_single, for one model.
    df = frame[["model", "score", "turn"]]
    df = df[df["score"] != -1]
    upstream_turn_1 = df[df["turn"] == 1].groupby(["model", "turn"]).mean()["score"].iloc[0]
    upstream_turn_2 = df[df["turn"] == 2].groupby(["model", "turn"]).mean()["score"].iloc[0]
    upstream_average = df[["model", "score"]].groupby(["model"]).mean()["score"].iloc[0]
    result = mt_bench.score_mt_bench(frame)
    assert result["turn_1"]["mean"] == pytest.approx(upstream_turn_1)
    assert result["turn_2"]["mean"] == pytest.approx(upstream_turn_2)
    assert result["overall"]["mean"] == pytest.approx(upstream_average)


def test_score_needs_one_model():
    frame = pd.concat([judgments_frame(), judgments_frame().assign(model="dpo")])
    with pytest.raises(ValueError, match="several models"):
        mt_bench.score_mt_bench(frame)
    assert mt_bench.score_mt_bench(frame, model="dpo")["overall"]["n"] == 5


def test_fastchat_sampling_answers_each_category_at_its_temperature(tmp_path):
    """With fastchat_sampling, each question is answered at FastChat's category temperature with at most 1024 new
    tokens, in both turns, and the answers come back in question order (a greedy run would not be comparable)."""
    from evals.registry import get_suite
    from pipeline.io import write_jsonl

    questions = [{"question_id": i + 1, "category": c, "turns": [f"q{i} t1", f"q{i} t2"]}
                 for i, c in enumerate(["writing", "math", "stem", "roleplay"])]
    path = tmp_path / "q.jsonl"
    write_jsonl(path, questions)
    rounds = get_suite("mt_bench").answer({"mt_bench_questions": path}, "m", {"fastchat_sampling": True})
    seen, reply = [], None
    try:
        while True:
            conversations, sampling = rounds.send(reply)
            seen.append((sampling["temperature"], sampling["max_new_tokens"], [c[-1]["content"] for c in conversations]))
            reply = [f"answer to {c[-1]['content']}" for c in conversations]
    except StopIteration as done:
        rows = done.value
    assert seen[:3] == [(0.0, 1024, ["q1 t1"]), (0.1, 1024, ["q2 t1"]), (0.7, 1024, ["q0 t1", "q3 t1"])]
    assert [r["choices"][0]["turns"] for r in rows] == [[f"answer to q{i} t1", f"answer to q{i} t2"] for i in range(4)]
