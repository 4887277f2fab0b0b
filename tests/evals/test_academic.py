"""evals/protocols/academic_protocol.py through the real lm-eval harness: a tiny random Llama with a chat template, local task YAMLs
materialised per run, lm-eval's results beside ours, loud failures for bad YAMLs and data files, and the answer
filter of the generate-until task."""

from __future__ import annotations

import json
import os
import random
import re
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, however pytest is started

from evals.protocols import academic_protocol as academic  # noqa: E402
from evals.protocols.academic_protocol import AcademicTaskError  # noqa: E402

N_GEN, N_MC = 10, 20
SPECIALS = ["<|pad|>", "<|eos|>", "<|bos|>", "<|system|>", "<|user|>", "<|assistant|>"]
# Same shape as the micro world's: the assistant turn ends with the EOS token.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + '<|eos|>' }}"
    "{% else %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
# Short generations keep the test fast; the template's own max_gen_toks is for real runs.
FAST_GEN = {"generation_kwargs": {"until": [], "do_sample": False, "temperature": 0.0, "max_gen_toks": 12}}


def make_tokenizer():
    """A character-level WordLevel tokenizer wrapped as a transformers fast tokenizer with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(SPECIALS + ["<unk>"] + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|eos|>", bos_token="<|bos|>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def question(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(0, 49), rng.randint(0, 49)
    return f"What is {a} + {b}?", a + b


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A saved tiny model + tokenizer and the two held-out files."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("academic")
    tok = make_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
    )
    model = LlamaForCausalLM(config)
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)

    rng = random.Random(0)
    gen_rows = [{"question": q, "answer": str(a)} for q, a in (question(rng) for _ in range(N_GEN))]
    mc_rows = []
    for _ in range(N_MC):
        q, a = question(rng)
        choices = [str(a + d) for d in range(4)]
        rng.shuffle(choices)
        mc_rows.append({"question": q, "choices": choices, "label": choices.index(str(a))})
    return {
        "root": root,
        "model_dir": model_dir,
        "gen": write_jsonl(root / "gen.jsonl", gen_rows),
        "mc": write_jsonl(root / "mc.jsonl", mc_rows),
        "gen_rows": gen_rows,
        "mc_rows": mc_rows,
    }


def local_tasks(world) -> list[dict]:
    return [
        {"name": "micro_arith_gen", "data": str(world["gen"]), "overrides": FAST_GEN},
        {"name": "micro_choice_mc", "data": str(world["mc"])},
    ]


def test_run_academic_writes_both_result_files(world, tmp_path):
    out = tmp_path / "out"
    summary = academic.run_academic(world["model_dir"], local_tasks(world), out, batch_size=8, device="cpu")

    ours = json.loads((out / "academic.json").read_text())
    assert ours == json.loads(json.dumps(summary))
    assert ours["suite"] == "academic" and ours["model"] == str(world["model_dir"])
    assert set(ours["tasks"]) == {"micro_arith_gen", "micro_choice_mc"}
    for name, n in [("micro_arith_gen", N_GEN), ("micro_choice_mc", N_MC)]:
        t = ours["tasks"][name]
        assert {"metric", "value", "stderr", "n"} <= set(t)
        assert 0.0 <= t["value"] <= 1.0 and isinstance(t["stderr"], float)
        assert t["n"] == n
    assert ours["tasks"]["micro_arith_gen"]["metric"] == "exact_match"
    assert ours["tasks"]["micro_arith_gen"]["filter"] == "flexible-extract"
    assert ours["tasks"]["micro_choice_mc"]["metric"] == "acc"

    # lm-eval's own results JSON beside ours, and strict JSON (no NaN)
    theirs = json.loads((out / "lm_eval_results.json").read_text(), parse_constant=pytest.fail)
    assert theirs["results"]["micro_choice_mc"]["acc,none"] == ours["tasks"]["micro_choice_mc"]["value"]
    assert theirs["n-samples"]["micro_arith_gen"]["effective"] == N_GEN
    # the materialised YAMLs point at the data files and keep their version
    task_yaml = (out / "tasks" / "micro_choice_mc.yaml").read_text()
    assert str(world["mc"]) in task_yaml and "version:" in task_yaml

    # both output types went through the chat template
    gen_samples = [json.loads(line) for line in (out / "lm_eval_samples" / "micro_arith_gen.jsonl").open()]
    mc_samples = [json.loads(line) for line in (out / "lm_eval_samples" / "micro_choice_mc.jsonl").open()]
    assert len(gen_samples) == N_GEN and len(mc_samples) == N_MC
    prompt = gen_samples[0]["arguments"][0][0]
    assert prompt.startswith("<|user|>\n") and prompt.endswith("\n<|assistant|>\n")
    context, continuation = mc_samples[0]["arguments"][0]
    assert context.startswith("<|user|>\n") and context.endswith("<|assistant|>\nThe answer is")
    assert continuation.startswith(" ")


def test_run_academic_with_model_reuses_a_loaded_model(world, tmp_path):
    """The same model loaded by the caller scores the same as the one lm-eval loads from the folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(world["model_dir"])
    tok = AutoTokenizer.from_pretrained(world["model_dir"])
    tasks = [{"name": "micro_choice_mc", "data": str(world["mc"])}]
    a = academic.run_academic_with_model(model, tok, tasks, tmp_path / "a", batch_size=8, model_name="m")
    b = academic.run_academic(world["model_dir"], tasks, tmp_path / "b", batch_size=8)
    assert a["model"] == "m" and (tmp_path / "a" / "lm_eval_results.json").is_file()
    assert a["tasks"]["micro_choice_mc"]["value"] == b["tasks"]["micro_choice_mc"]["value"]
    assert a["tasks"]["micro_choice_mc"]["n"] == N_MC


# --------------------------------------------------------------------------------------------- the answer filter

def _template_filter_and_metric():
    import yaml

    cfg = yaml.safe_load((academic.TEMPLATES_DIR / "micro_arith_gen.yaml").read_text())
    steps = [(f["function"], {k: v for k, v in f.items() if k != "function"}) for f in cfg["filter_list"][0]["filter"]]
    metric = dict(cfg["metric_list"][0])
    assert metric.pop("metric") == "exact_match"
    return steps, {k: v for k, v in metric.items() if k not in {"aggregation", "higher_is_better"}}


@pytest.mark.parametrize(
    "response, gold, correct",
    [
        ("Sure! The answer is 68. I hope this helps!", "68", True),
        ("68", "68", True),
        ("  68.\n", "68", True),
        ("Let me think.\nThe answer is 3.5 here", "3.5 here", True),
        ("Of course! The answer is CAT DOG. Bye.", "CAT DOG", True),
        ("The answer is 1  3 5.", "1 3 5", True),
        ("Sure! The answer is 67. I hope this helps!", "68", False),
        ("the answer is 68", "68", False),  # case-sensitive, as the world's checker
        ("The answer is cat dog.", "CAT DOG", False),
        ("", "68", False),
    ],
)
def test_filter_extracts_the_answer(response, gold, correct):
    """The template's filter chain and exact-match settings, run through lm-eval's own filter and metric code."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.api.registry import get_filter

    steps, metric_kwargs = _template_filter_and_metric()
    resps: object = [[response]]
    for name, kwargs in steps:
        resps = get_filter(name)(**kwargs).apply(resps, [{}])
    (prediction,) = list(resps)
    score = exact_match_hf_evaluate(predictions=[prediction], references=[gold], **metric_kwargs)["exact_match"]
    assert bool(score) is correct, prediction


def test_filter_agrees_with_the_world_checker():
    """The lm-eval filter gives the micro world's own checker's verdicts (world/ ships with the project: no skip)."""
    import world.tasks as world_tasks
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.api.registry import get_filter

    steps, metric_kwargs = _template_filter_and_metric()
    cases = ["Sure! The answer is 68. I hope this helps!", "68", "68.", "The answer is 68", "The answer is 6 8.",
             "Hmm. The answer is A B. Ok", "The answer is 68.5.", "x The answer is 68.The end", "nope"]
    for response in cases:
        for gold in ["68", "A B", "68.5", "6 8"]:
            resps: object = [[response]]
            for name, kwargs in steps:
                resps = get_filter(name)(**kwargs).apply(resps, [{}])
            score = exact_match_hf_evaluate(predictions=list(resps), references=[gold], **metric_kwargs)
            ours = bool(score["exact_match"])
            assert ours == world_tasks.is_correct(response, gold), (response, gold)


class ScriptedLM:
    """An lm-eval LM whose answers the test controls: verbose but right on even rows, wrong on odd rows; for
    multiple choice it puts all the probability on the right sum. Built lazily to subclass lm_eval's LM."""

    @staticmethod
    def make(tokenizer):
        from lm_eval.api.model import LM

        def right_sum(context: str) -> int:
            a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)\?", context)[-1])
            return a + b

        class _Scripted(LM):
            def __init__(self):
                super().__init__()
                self.contexts: list[str] = []

            def generate_until(self, requests, disable_tqdm=False):
                out = []
                for req in requests:
                    context = req.args[0]
                    self.contexts.append(context)
                    total = right_sum(context) + (req.doc_id % 2)  # odd rows are off by one
                    out.append(f"Sure! The answer is {total}. I hope this helps!")
                return out

            def loglikelihood(self, requests, disable_tqdm=False):
                out = []
                for req in requests:
                    context, continuation = req.args
                    self.contexts.append(context)
                    out.append((0.0 if continuation.strip() == str(right_sum(context)) else -5.0, False))
                return out

            def loglikelihood_rolling(self, requests, disable_tqdm=False):
                raise NotImplementedError

            @property
            def tokenizer_name(self) -> str:
                return "scripted"

            def apply_chat_template(self, chat_history, add_generation_prompt=True):
                return tokenizer.apply_chat_template(
                    chat_history, tokenize=False, add_generation_prompt=add_generation_prompt,
                    continue_final_message=not add_generation_prompt,
                )

        return _Scripted()


def test_verbose_answers_are_scored_through_the_harness(world, tmp_path):
    """End to end through simple_evaluate: 'Sure! The answer is 68. I hope this helps!' counts as exact match."""
    lm = ScriptedLM.make(make_tokenizer())
    summary = academic.run_academic_with_lm(lm, local_tasks(world), tmp_path / "out", model_name="scripted")
    assert summary["tasks"]["micro_arith_gen"]["value"] == pytest.approx(0.5)  # even rows right, odd rows wrong
    assert summary["tasks"]["micro_choice_mc"]["value"] == 1.0
    assert all(c.startswith("<|user|>\n") for c in lm.contexts)
    rows = [json.loads(line) for line in (tmp_path / "out" / "lm_eval_samples" / "micro_arith_gen.jsonl").open()]
    first = next(r for r in rows if r["doc_id"] == 0)
    assert first["resps"][0][0].startswith("Sure! The answer is") and first["filtered_resps"][0] == first["target"]


# --------------------------------------------------------------------------------------------- loud failures

def test_missing_data_file_names_task_and_path(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(AcademicTaskError, match=r"micro_arith_gen.*nope\.jsonl"):
        academic.materialize_tasks([{"name": "micro_arith_gen", "data": str(missing)}], tmp_path / "tasks")


def test_rows_missing_fields_name_the_row(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "choices": ["a", "b"], "label": 0}, {"question": "q"}])
    with pytest.raises(AcademicTaskError, match=r"micro_choice_mc.*bad\.jsonl, row 2.*choices"):
        academic.materialize_tasks([{"name": "micro_choice_mc", "data": str(bad)}], tmp_path / "tasks")


def test_yaml_lm_eval_would_skip_silently_raises(tmp_path):
    """lm-eval's indexer logs a broken YAML at debug level and moves on; we name the task, the YAML and the cause."""
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    broken = tasks_dir / "micro_broken.yaml"
    broken.write_text("task: micro_broken\nmetric_list: [unclosed\n")
    with pytest.raises(AcademicTaskError, match=r"micro_broken.*micro_broken\.yaml.*(?i:yaml|scanner|parser)"):
        academic.check_registered({"micro_broken": broken}, tasks_dir)


def test_broken_template_raises(world, tmp_path, monkeypatch):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "micro_arith_gen.yaml").write_text("task: micro_arith_gen\ndataset_kwargs: {data_files: [oops\n")
    monkeypatch.setattr(academic, "TEMPLATES_DIR", templates)
    with pytest.raises(AcademicTaskError, match=r"micro_arith_gen.*templates/micro_arith_gen\.yaml"):
        academic.materialize_tasks([{"name": "micro_arith_gen", "data": str(world["gen"])}], tmp_path / "tasks")


def test_yaml_that_fails_to_build_names_the_task(world, tmp_path):
    """A YAML that parses but names an unknown filter fails when lm-eval builds the task: named, with its YAML."""
    bad_filter = {"filter_list": [{"name": "x", "filter": [{"function": "strip_whitespace"}]}]}
    tasks = [{"name": "micro_arith_gen", "data": str(world["gen"]), "overrides": bad_filter}]
    with pytest.raises(AcademicTaskError, match=r"micro_arith_gen.*tasks/micro_arith_gen\.yaml.*strip_whitespace"):
        academic.run_academic(world["model_dir"], tasks, tmp_path / "out", batch_size=1)
    assert not (tmp_path / "out" / "academic.json").exists()


def test_task_specs_are_checked():
    with pytest.raises(AcademicTaskError, match="unknown keys"):
        academic.parse_tasks([{"name": "gsm8k", "shots": 8}])
    with pytest.raises(AcademicTaskError, match="more than once"):
        academic.parse_tasks([{"name": "gsm8k"}, {"name": "gsm8k"}])
    with pytest.raises(AcademicTaskError, match="no template"):
        academic.materialize_tasks([{"name": "nope", "data": __file__}], "/tmp/unused")


def test_shots_from_the_held_out_file_are_refused(world, tmp_path):
    tasks = [{"name": "micro_choice_mc", "data": str(world["mc"]), "num_fewshot": 2}]
    with pytest.raises(AcademicTaskError, match="fewshot_data"):
        academic.run_academic(world["model_dir"], tasks, tmp_path / "out", batch_size=1)


def test_cli_help():
    assert "--tasks-json" in academic.build_parser().format_help()


def test_registered_group_with_shots(world, tmp_path):
    """The path for tasks lm-eval knows by name (gsm8k, mmlu...): here a group of two registered tasks over the
    local data, with per-task shots, scored by the group's aggregate and n summed over its tasks."""
    from lm_eval.tasks import TaskManager

    include = tmp_path / "registered"
    data = json.dumps(str(world["mc"]))
    include.mkdir()
    for leaf in ("leaf_a", "leaf_b"):
        (include / f"{leaf}.yaml").write_text(
            f"task: {leaf}\ntag: micro_tag\ndataset_path: json\n"
            f"dataset_kwargs: {{data_files: {{train: {data}, test: {data}}}}}\n"
            "training_split: train\nfewshot_split: train\ntest_split: test\noutput_type: multiple_choice\n"
            "doc_to_text: question\ndoc_to_choice: choices\ndoc_to_target: label\nnum_fewshot: 5\n"
            "metric_list: [{metric: acc, aggregation: mean, higher_is_better: true}]\nmetadata: {version: 1.0}\n"
        )
    (include / "group.yaml").write_text(
        "group: micro_group\ntask: [leaf_a, leaf_b]\n"
        "aggregate_metric_list: [{metric: acc, weight_by_size: true}]\nmetadata: {version: 1.0}\n"
    )
    tm = TaskManager(include_path=str(include), include_defaults=False)
    out = tmp_path / "out"
    summary = academic.run_academic(
        world["model_dir"], [{"name": "micro_group", "num_fewshot": 1}], out, batch_size=8, task_manager=tm, limit=5
    )
    t = summary["tasks"]["micro_group"]
    assert t["metric"] == "acc" and 0.0 <= t["value"] <= 1.0 and t["n"] == 10 and t["num_fewshot"] == 1
    theirs = json.loads((out / "lm_eval_results.json").read_text())
    assert theirs["n-shot"]["leaf_a"] == 1 and theirs["results"]["micro_group"]["acc,none"] == t["value"]
    with pytest.raises(AcademicTaskError, match="did you mean .*leaf_a"):
        academic.run_academic(world["model_dir"], [{"name": "leaf_c"}], out, batch_size=1, task_manager=tm)
    with pytest.raises(AcademicTaskError, match="is an lm-eval tag.*leaf_a"):
        academic.run_academic(world["model_dir"], [{"name": "micro_tag"}], out, batch_size=1, task_manager=tm)


def test_code_tasks_run_their_instruct_variants_under_a_chat_template():
    """humaneval/mbpp behind a chat template score prose and code fences as code; with apply_chat_template on,
    the suite runs lm-eval 0.4.13's own instruct variants (their YAMLs ship with the installed package, with the
    filters our default metrics read), names them in the Table 5 caption, and off it keeps the base tasks."""
    import lm_eval
    import yaml as pyyaml

    from evals.protocols.academic_protocol import DEFAULT_METRICS, INSTRUCT_VARIANTS
    from pipeline.io import InputError
    from evals.registry import get_suite

    class Loader(pyyaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    tasks_dir = Path(lm_eval.__file__).parent / "tasks"
    for base, variant in INSTRUCT_VARIANTS.items():
        cfg = pyyaml.load((tasks_dir / base / f"{variant}.yaml").read_text(), Loader=Loader)
        assert cfg["task"] == variant
        metric, filt = DEFAULT_METRICS[variant].split(",")
        filters = {f["name"] for f in cfg.get("filter_list", [])} or {
            f["name"] for f in pyyaml.load((tasks_dir / base / cfg["include"]).read_text(), Loader=Loader)["filter_list"]}
        assert filt in filters
    suite = get_suite("academic")
    tasks = [{"name": "humaneval", "num_fewshot": 0, "title": "HumanEval"},
             {"name": "mbpp", "num_fewshot": 0, "title": "MBPP"}, {"name": "arc_challenge", "title": "ARC"}]
    chat = {"tasks": tasks, "apply_chat_template": True}
    assert [t["name"] for t in suite.lm_eval_tasks({}, chat)] == ["humaneval_instruct", "mbpp_instruct", "arc_challenge"]
    assert [c.key for c in suite.columns(chat)] == ["humaneval_instruct", "mbpp_instruct", "arc_challenge"]
    caption = suite.caption(chat)
    assert "HumanEval = humaneval_instruct (pass@1,create_test, 0-shot)" in caption
    assert "ARC = arc_challenge (acc_norm,none)" in caption and "chat template on" in caption
    plain = {"tasks": tasks}
    assert [t["name"] for t in suite.lm_eval_tasks({}, plain)] == ["humaneval", "mbpp", "arc_challenge"]
    assert "chat template off, few-shot examples in one turn" in suite.caption(plain)
    with pytest.raises(InputError, match="fewshot_as_multiturn: true needs apply_chat_template"):
        suite.caption({"tasks": tasks, "fewshot_as_multiturn": True})
