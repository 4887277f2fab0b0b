"""The suite registry and the generate -> judge -> score -> leaderboard stages of every chat suite, on a small micro
world with scripted models: our files carry the upstream field names and load with pandas exactly as the upstream
scripts read them, and the scores follow from the judgment files."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from evals import registry
from evals.registry import ChatSuite, Column, HarnessSuite, check_suite_blocks, get_suite, registered
from pipeline.io import read_json, read_jsonl, validate
from tests.evals.conftest import CHAT_SUITES, ROOT


# --------------------------------------------------------------------------------------------- registry


def test_every_suite_is_registered_with_its_declarations():
    """Guards against a suite module whose declarations the rules read (files, schemas, judge) are missing; the list
    comes from the registry, so a new suite is checked without editing this test."""
    suites = registered()
    assert set(suites) >= {"alpaca_eval", "mt_bench", "arena_hard", "academic"}
    for name, suite in suites.items():
        assert suite.name == name and suite.version and suite.generation_file
        assert isinstance(suite, (ChatSuite, HarnessSuite))
        assert suite.is_judged == isinstance(suite, ChatSuite), name
        if suite.is_judged:
            for schema in (suite.generation_schema, suite.judgment_schema):
                assert (ROOT / "workflow" / "schemas" / f"{schema}.schema.yaml").is_file(), (name, schema)
    assert {s for s in CHAT_SUITES if suites[s].is_judged} == set(CHAT_SUITES)
    assert suites["arena_hard"].has_leaderboard


def test_suite_blocks_name_registered_suites_and_their_judge(config):
    """Guards against a misspelt suite under `evals:` or a judged suite without a judge passing the config check
    (the config schema accepts any suite name, so that a new suite needs no schema edit)."""
    from pipeline.config import ConfigError

    check_suite_blocks(config, "smoke.yaml")
    misspelt = {**config, "evals": {"mt_bnech": {"judge": "oracle"}}}
    with pytest.raises(ConfigError, match=r"smoke\.yaml: key evals\.mt_bnech: unknown suite 'mt_bnech' \(did you mean "
                                          r"'mt_bench'\?\)"):
        check_suite_blocks(misspelt, "smoke.yaml")
    with pytest.raises(ConfigError, match=r"key evals\.mt_bench\.judge: required \(suite 'mt_bench' is judged\)"):
        check_suite_blocks({**config, "evals": {"mt_bench": {}}}, "smoke.yaml")


def test_unknown_suite_names_the_registered_ones():
    with pytest.raises(KeyError, match=r"unknown suite 'mt_bnech' \(did you mean 'mt_bench'\?\); registered suites"):
        get_suite("mt_bnech")


def test_a_taken_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="suite 'mt_bench' is already registered"):
        @registry.register_suite
        class Again(ChatSuite):  # noqa: F841
            name, version, generation_file = "mt_bench", "1", "x.jsonl"


def test_columns_come_from_the_config_block(config):
    columns = get_suite("academic").columns(config["evals"]["academic"])
    assert [c.title for c in columns] == [t["title"] for t in config["evals"]["academic"]["tasks"]]
    assert all(isinstance(c, Column) and c.in_paper("table5") for c in columns)
    assert get_suite("alpaca_eval").columns({})[3].in_paper("table4") == "LC AlpacaEval-2"


def test_judging_and_scoring_import_no_torch():
    code = ("import sys, evals.evaluate, evals.leaderboard, evals.aggregate, evals.judges.http, "
            "evals.judges.oracle; from evals.registry import registered; registered(); "
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'lm_eval') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------- generation


def test_one_backend_call_per_round_serves_every_suite(generate_for, eval_data):
    _, backend = generate_for("concise", "concise")
    assert len(backend.calls) == 2  # round 1: every suite's first turn together; round 2: MT-Bench's second turn
    questions = read_jsonl(eval_data["mt_bench_questions"])
    assert len(backend.calls[0][0]) == sum(len(read_jsonl(eval_data[k])) for k in ("arena_hard_questions",)) + \
        len(read_json(eval_data["alpaca_eval_baseline"])) + len(questions)
    second = backend.calls[1][0]
    assert len(second) == len(questions)
    for conversation, question in zip(second, questions):
        # the second turn is asked after the model's own first answer
        assert [m["role"] for m in conversation] == ["user", "assistant", "user"]
        assert conversation[1]["content"] == backend.answer(conversation[:1])
        assert conversation[2]["content"] == question["turns"][1]


def test_alpaca_eval_outputs_load_as_upstream_reads_them(generate_for):
    folder, _ = generate_for("concise", "concise")
    path = folder / "alpaca_eval.json"
    rows = json.loads(path.read_text())
    assert isinstance(rows, list)
    frame = pd.DataFrame(rows)  # alpaca_eval's load_or_convert_to_dataframe: a JSON list of records
    assert {"instruction", "output", "generator"} <= set(frame.columns)
    assert set(pd.read_json(path)["generator"]) == {"concise"}


def test_mt_bench_answers_load_as_fastchat_reads_them(generate_for):
    folder, _ = generate_for("concise", "concise")
    frame = pd.read_json(folder / "mt_bench.jsonl", lines=True)
    assert {"question_id", "answer_id", "model_id", "choices", "tstamp"} <= set(frame.columns)
    assert frame["question_id"].dtype.kind == "i"
    for choices in frame["choices"]:
        assert choices[0]["index"] == 0 and len(choices[0]["turns"]) == 2


def test_arena_hard_answers_load_as_arena_hard_auto_reads_them(generate_for, eval_data):
    folder, _ = generate_for("concise", "concise")
    for path in (folder / "arena_hard.jsonl", eval_data["arena_hard_baseline"]):
        frame = pd.read_json(path, lines=True)
        assert {"uid", "model", "messages"} <= set(frame.columns)
        assert all(isinstance(m[-1]["content"]["answer"], str) for m in frame["messages"])
    # upstream's gen_answer.py writes style metadata with each model answer (the baseline's is computed when absent)
    assert all("token_len" in meta for meta in pd.read_json(folder / "arena_hard.jsonl", lines=True)["metadata"])


def test_data_stage_writes_upstream_question_files(eval_data):
    questions = pd.read_json(eval_data["mt_bench_questions"], lines=True)
    assert {"question_id", "category", "turns"} <= set(questions.columns)
    assert "reference" not in questions.columns   # FastChat reads references from their own file
    needs_ref = set(questions.loc[questions["category"].isin(["math", "reasoning", "coding"]), "question_id"])
    references = read_jsonl(eval_data["mt_bench_reference"], schema="mt_bench_answer")  # reference_answer/gpt-4.jsonl
    assert {r["question_id"] for r in references} == needs_ref and needs_ref
    assert all(len(r["choices"][0]["turns"]) == 2 for r in references)
    arena = pd.read_json(eval_data["arena_hard_questions"], lines=True)
    assert {"uid", "category", "prompt"} <= set(arena.columns)
    mc = read_jsonl(eval_data["academic_mc"], schema="academic_mc_row")
    assert all(len(set(r["choices"])) == 4 for r in mc)


# --------------------------------------------------------------------------------------------- judging


@pytest.fixture(scope="module")
def judged(generate_for, eval_data, config):
    """judged(model, style) -> {suite: (judgment file, rows)} by the oracle judge, via the evaluation stage's main()
    (which scores them too)."""
    from evals import evaluate

    done = {}

    def run(model: str, style: str) -> dict[str, tuple]:
        if (model, style) not in done:
            folder, _ = generate_for(model, style)
            evals = {suite: config["evals"][suite] for suite in CHAT_SUITES}
            kinds = dict.fromkeys(k for suite in CHAT_SUITES for k in (*get_suite(suite).judge_inputs(evals[suite]),
                                                                        *get_suite(suite).score_inputs(evals[suite])))
            out = folder.parent / f"evaluated_{model}"
            evaluate.main([
                "--model", model, "--evals-json", json.dumps(evals),
                "--judges-json", json.dumps({"oracle": config["judges"]["oracle"]}),
                "--world-json", json.dumps(config["world"]), "--generations-dir", str(folder),
                "--data", *[f"{k}={eval_data[k]}" for k in kinds], "--items", str(eval_data["eval_items"]),
                "--judge-cache", str(out / "judge_cache"), "--judgments-dir", str(out / "judgments"),
                "--scores-dir", str(out / "scores")])
            done[(model, style)] = {suite: (out / "judgments" / f"{suite}.jsonl",
                                            read_jsonl(out / "judgments" / f"{suite}.jsonl",
                                                       schema=get_suite(suite).judgment_schema))
                                    for suite in CHAT_SUITES}
        return done[(model, style)]

    return run


def test_alpaca_eval_judgments_load_as_upstream_annotations(judged):
    path, rows = judged("concise", "concise")["alpaca_eval"]
    frame = pd.read_json(path, lines=True)
    upstream = {"instruction", "output_1", "generator_1", "output_2", "generator_2", "annotator", "preference"}
    ours = {"judge", "prompt_hash", "raw_completion", "latency_s", "cache_hit"}
    assert upstream | ours <= set(frame.columns)
    assert set(frame["generator_1"]) == {"baseline"} and set(frame["generator_2"]) == {"concise"}
    assert frame["preference"].between(1, 2).all()


def test_mt_bench_judgments_load_as_fastchat_show_result_reads_them(judged):
    path, rows = judged("concise", "concise")["mt_bench"]
    df_all = pd.read_json(path, lines=True)  # fastchat/llm_judge/show_result.py display_result_single
    df = df_all[["model", "score", "turn"]]
    df = df[df["score"] != -1]
    assert set(df["turn"]) == {1, 2} and len(df) == len(rows)
    table = df.groupby(["model", "turn"]).mean()
    assert table.shape == (2, 1)
    prompts = {tuple(j) for j in df_all["judge"]}
    assert ("oracle", "single-math-v1") in prompts and ("oracle", "single-math-v1-multi-turn") in prompts
    assert {"prompt_hash", "latency_s", "cache_hit", "judgment", "user_prompt"} <= set(df_all.columns)


def test_mt_bench_reference_is_shown_for_math_reasoning_coding(judged, eval_data):
    _, rows = judged("concise", "concise")["mt_bench"]
    categories = {q["question_id"]: q for q in read_jsonl(eval_data["mt_bench_questions"])}
    references = {r["question_id"]: r["choices"][0]["turns"] for r in read_jsonl(eval_data["mt_bench_reference"])}
    for row in rows:
        q = categories[row["question_id"]]
        with_ref = "Start of Reference Answer" in row["user_prompt"]  # single-math-v1 and its multi-turn form
        assert with_ref == (q["category"] in ("math", "reasoning", "coding"))
        if with_ref:
            assert references[row["question_id"]][row["turn"] - 1] in row["user_prompt"]


def test_mt_bench_question_without_reference_stops_judging_naming_it(generate_for, eval_data, config, tmp_path):
    """A math/reasoning/coding question missing from the reference file (the hub's coding question 123) stops the
    judge stage with one line naming the question, before any judge call."""
    from evals.judges.oracle import OracleJudge
    from evals.registry import get_suite
    from pipeline.io import InputError, write_jsonl

    references = read_jsonl(eval_data["mt_bench_reference"])
    dropped = references[0]["question_id"]
    partial = tmp_path / "reference.jsonl"
    write_jsonl(partial, references[1:])
    folder, _ = generate_for("concise", "concise")
    judge = OracleJudge(temperature=0.2, verbosity_bias=0.0, length_scale=50, seed=0,
                        gold_reward=config["world"]["gold_reward"])
    data = {**eval_data, "mt_bench_reference": partial}
    with pytest.raises(InputError, match=f"question {dropped} .* no reference answer"):
        get_suite("mt_bench").judge(judge, "concise", folder / "mt_bench.jsonl", data, config["evals"]["mt_bench"])


def test_arena_hard_judgments_load_as_show_result_reads_them(judged, generate_for, eval_data):
    from evals.protocols.arena_hard_protocol import answer_text, judgments_to_battles

    path, rows = judged("verbose", "verbose")["arena_hard"]
    data = pd.read_json(path, lines=True)  # arena-hard-auto show_result.py load_judgments
    data = data[data.games.map(len) == 2]
    assert {"uid", "category", "judge", "model", "baseline", "games"} <= set(data.columns)
    baseline = {a["uid"]: answer_text(a) for a in read_jsonl(eval_data["arena_hard_baseline"])}
    model = {a["uid"]: answer_text(a) for a in read_jsonl(generate_for("verbose", "verbose")[0] / "arena_hard.jsonl")}
    for uid, games in zip(data["uid"], data["games"]):
        assert {"score", "judgment", "prompt"} <= set(games[0]) and "answer" in games[0]["judgment"]
        # game 1 shows the baseline as assistant A, game 2 the model
        shown_a = [g["prompt"][1]["content"].split("<|The Start of Assistant A's Answer|>\n")[1]
                   .split("\n<|The End of Assistant A's Answer|>")[0] for g in games]
        assert shown_a == [baseline[uid], model[uid]]
    assert len(judgments_to_battles(data)) >= 2 * len(data)


# --------------------------------------------------------------------------------------------- scoring


def score(suite, model, judged_rows, folder, eval_data, config):
    s = get_suite(suite)
    result = s.score(model, folder / s.generation_file, judged_rows[suite][0],
                     {**{k: eval_data[k] for k in s.score_inputs(config["evals"][suite])},
                      "eval_items": eval_data["eval_items"]}, config["evals"][suite], config["world"])
    validate(result, "score", suite)
    return result


def test_scores_follow_the_judgments_and_the_world(judged, generate_for, eval_data, config):
    results = {}
    for style in ("concise", "verbose", "wrong"):
        rows = judged(style, style)
        folder, _ = generate_for(style, style)
        results[style] = {suite: score(suite, style, rows, folder, eval_data, config)["metrics"] for suite in CHAT_SUITES}
        ae = results[style]["alpaca_eval"]
        prefs = [r["preference"] for r in rows["alpaca_eval"][1]]
        assert ae["win_rate"]["value"] == pytest.approx(100 * (sum(prefs) / len(prefs) - 1))
        assert ae["lc_win_rate"]["glm"] == "length_controlled_minimal" and ae["lc_win_rate"]["stderr"] > 0
        mt = results[style]["mt_bench"]
        turn1 = [r["score"] for r in rows["mt_bench"][1] if r["turn"] == 1]
        assert mt["turn_1"]["value"] == pytest.approx(sum(turn1) / len(turn1))
        ah = results[style]["arena_hard"]["score"]
        assert ah["lower"] <= ah["value"] <= ah["upper"]
    # The world's truth: right answers beat wrong ones on every suite; the gold checker agrees.
    for suite, key in [("alpaca_eval", "win_rate"), ("mt_bench", "overall"), ("arena_hard", "score")]:
        assert results["concise"][suite][key]["value"] > results["wrong"][suite][key]["value"]
    assert results["concise"]["alpaca_eval"]["gold_accuracy"]["value"] == 100
    assert results["wrong"]["alpaca_eval"]["gold_accuracy"]["value"] == 0
    assert results["verbose"]["mt_bench"]["gold_accuracy_turn_2"]["value"] == 100


def test_leaderboard_fits_every_model_with_style_control(judged, generate_for, eval_data, config):
    suite = get_suite("arena_hard")
    models = ("concise", "verbose")
    board = suite.leaderboard({m: generate_for(m, m)[0] / suite.generation_file for m in models},
                              {m: judged(m, m)["arena_hard"][0] for m in models},
                              {"arena_hard_baseline": eval_data["arena_hard_baseline"]},
                              config["evals"]["arena_hard"], seed=0)
    validate(board, "leaderboard", "leaderboard")
    assert set(board["models"]) == set(models) and board["baseline"] == "baseline"
    assert set(board["style_coefficients"]) == {"length", "header", "list", "bold"}
    for metrics in board["models"].values():
        assert metrics["style_score"]["lower"] <= metrics["style_score"]["value"] <= metrics["style_score"]["upper"]


def test_evaluate_entry_point_names_a_missing_generation_file(tmp_path):
    """Bug guarded: a missing input file ending the evaluation in a traceback instead of one line naming it."""
    out = subprocess.run([sys.executable, "-m", "evals.evaluate", "--model", "m",
                          "--evals-json", json.dumps({"mt_bench": {"judge": "oracle"}}),
                          "--generations-dir", str(tmp_path), "--judge-cache", str(tmp_path / "c"),
                          "--judgments-dir", str(tmp_path / "j"), "--scores-dir", str(tmp_path / "s")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.strip() == f"error: {tmp_path / 'mt_bench.jsonl'}: file not found"


def test_arena_hard_v01_asks_again_through_the_suite(generate_for, eval_data, config):
    """v0.1 through the suite's judge stage: a first judgment without a verdict gets the second call (the same
    judge, the conversation plus "continue your judgment..."), its verdict is scored, and the row records 2
    attempts; judge calls carry v0.1's max_tokens 4096."""
    from evals.judges.base import JudgeResponse
    from evals.registry import get_suite

    class Scripted:
        judge_id, sampling = "scripted", {}

        def __init__(self):
            self.batches = []

        def judge(self, requests):
            self.batches.append(requests)
            out = []
            for r in requests:
                last = r.messages[-1]["content"]
                text = ("My final verdict is: [[B>A]]" if last.startswith("continue your judgment")
                        else "I ran out of tokens before a verdict" if r.key.endswith("game1") else "[[A=B]]")
                out.append(JudgeResponse(r.key, self.judge_id, "h", text, 0.0, False))
            return out

    folder, _ = generate_for("concise", "concise")
    judge = Scripted()
    settings = {**config["evals"]["arena_hard"], "version": "v0.1"}
    rows = get_suite("arena_hard").judge(judge, "concise", folder / "arena_hard.jsonl", eval_data, settings)
    assert len(judge.batches) == 2 and len(judge.batches[1]) == len(rows)
    assert all(r.sampling["max_tokens"] == 4096 for batch in judge.batches for r in batch)
    for row in rows:
        assert row["version"] == "v0.1"
        assert [g["attempts"] for g in row["games"]] == [2, 1]
        assert [g["score"] for g in row["games"]] == ["B>A", "A=B"]
        assert row["games"][0]["judgment"]["answer"] == ("\nI ran out of tokens before a verdict"
                                                         "\nMy final verdict is: [[B>A]]")


def test_protocol_comparison_reads_both_alpaca_rates_and_judges_both_arena_versions(generate_for, eval_data, config,
                                                                                     tmp_path):
    """benchmarks/protocol_comparison.py on a study folder laid out as results/<study>/: the weighted, discrete and
    sampled-letter AlpacaEval win rates come from the score files; Arena-Hard is re-judged under v0.1 and v2.0."""
    import shutil
    import sys

    from evals.registry import get_suite
    from pipeline.io import write_json, write_jsonl

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from protocol_comparison import compare

    results = tmp_path / "study"
    for kind in ("arena_hard_questions", "arena_hard_baseline", "eval_items"):
        (results / "data").mkdir(parents=True, exist_ok=True)
        shutil.copy(eval_data[kind], results / "data" / eval_data[kind].name)
    judge = OracleJudgeFor(config)
    for model, style in (("concise", "concise"), ("verbose", "verbose")):
        folder, _ = generate_for(model, style)
        (results / "generations" / model).mkdir(parents=True)
        shutil.copy(folder / "arena_hard.jsonl", results / "generations" / model / "arena_hard.jsonl")
        suite = get_suite("alpaca_eval")
        rows = suite.judge(judge, model, folder / "alpaca_eval.json", eval_data, config["evals"]["alpaca_eval"])
        judgments = tmp_path / f"{model}.jsonl"
        write_jsonl(judgments, rows)
        score = suite.score(model, folder / "alpaca_eval.json", judgments, eval_data,
                            {**config["evals"]["alpaca_eval"], "lc_bootstrap": 0}, config["world"])
        write_json(results / "scores" / model / "alpaca_eval.json", score, schema="score")
    table = compare(config, results, ["concise", "verbose"]).set_index("model")
    assert table.loc["verbose", "AE weighted WR"] != table.loc["verbose", "AE discrete WR"]
    assert {"AH v0.1", "AH v2.0", "AE sampled-letter WR"} <= set(table.columns)
    assert (table["AH v0.1 second calls"] == 0).all()       # the oracle always gives a verdict


def OracleJudgeFor(config):
    from evals.judges.oracle import OracleJudge

    block = {k: v for k, v in config["judges"][config["evals"]["alpaca_eval"]["judge"]].items() if k != "kind"}
    return OracleJudge(**block, gold_reward=config["world"]["gold_reward"])
