"""Academic benchmarks through the real lm-eval harness (``evals/protocols/academic_protocol.py``), run in the generation process on
the model it already loaded: GSM8K, MMLU, ARC, TruthfulQA, HumanEval, MBPP on real configs; the micro world's
local task YAMLs (``evals/lm_eval_tasks/``) over held-out items.

Files: the generation stage writes lm-eval's outputs to ``generations/<model>/academic/`` (``academic.json``, our
summary; ``lm_eval_results.json``, lm-eval's own results; ``lm_eval_samples/``; ``tasks/``); the score stage writes
``scores/<model>/academic.json`` (values in percent) and keeps lm-eval's results JSON beside it. Config block
``evals.academic``: ``tasks`` (each ``{name, data?, title?, num_fewshot?, metric?, overrides?}``; ``data`` names a
data-stage file kind), ``batch_size``, ``limit``, ``apply_chat_template`` and ``fewshot_as_multiturn`` (lm-eval's
options; default off, the Open LLM Leaderboard v1's convention, the report being silent; with a chat template on,
``humaneval`` and ``mbpp`` run as lm-eval's ``humaneval_instruct`` and ``mbpp_instruct``), ``published``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from evals.registry import Column, HarnessSuite, register_suite
from evals.suites import metric, need
from pipeline.io import InputError, read_json

# Keys of a task entry that are ours (table titles), not evals/protocols/academic_protocol.py's.
OWN_KEYS = ("title",)
LM_EVAL_RESULTS = "lm_eval_results.json"


def title(task: Mapping[str, Any]) -> str:
    return task.get("title", task["name"])


def harness_options(settings: Mapping[str, Any]) -> dict[str, bool]:
    """lm-eval's chat-template options of the suite's config block (defaults: the Open LLM Leaderboard v1's)."""
    from evals.protocols import academic_protocol as ap

    options = {"apply_chat_template": bool(settings.get("apply_chat_template", ap.DEFAULT_APPLY_CHAT_TEMPLATE)),
               "fewshot_as_multiturn": bool(settings.get("fewshot_as_multiturn", ap.DEFAULT_FEWSHOT_AS_MULTITURN))}
    if options["fewshot_as_multiturn"] and not options["apply_chat_template"]:
        raise InputError("config key evals.academic.fewshot_as_multiturn: true needs apply_chat_template: true "
                         "(lm-eval builds the multi-turn few-shot from the chat template)")
    return options


def task_name(task: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The lm-eval task run for a configured task (a code task's instruct variant under a chat template)."""
    from evals.protocols.academic_protocol import task_variant

    return task_variant(task["name"], harness_options(settings)["apply_chat_template"])


@register_suite
class Academic(HarnessSuite):
    name = "academic"
    version = "2"
    generation_file = "academic/academic.json"
    generation_data = ()

    def columns(self, settings: Mapping[str, Any]) -> list[Column]:
        return [Column(task_name(task, settings), title(task), paper={"table5": title(task)})
                for task in settings["tasks"]]

    def caption(self, settings: Mapping[str, Any]) -> str:
        from evals.protocols.academic_protocol import DEFAULT_METRICS

        limit = settings.get("limit")
        options = harness_options(settings)

        def described(task: Mapping[str, Any]) -> str:
            name = task_name(task, settings)
            metric = task.get("metric") or DEFAULT_METRICS.get(name, "its first metric")
            shots = f", {task['num_fewshot']}-shot" if "num_fewshot" in task else ""
            return f"{title(task)} = {name} ({metric}{shots})"

        return ("Academic: lm-eval " + ", ".join(described(t) for t in settings["tasks"])
                + f"; chat template {'on' if options['apply_chat_template'] else 'off'}, few-shot examples "
                + ("as multi-turn chat" if options["fewshot_as_multiturn"] else "in one turn")
                + " (percent" + (f"; at most {limit} items per task" if limit else "") + ").")

    def generation_inputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(task["data"] for task in settings["tasks"] if "data" in task)

    def lm_eval_tasks(self, data: Mapping[str, Path], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
        """evals/protocols/academic_protocol.py task dicts: our keys dropped, data kinds replaced by their files."""
        tasks = []
        for task in settings["tasks"]:
            task = {**{k: v for k, v in task.items() if k not in OWN_KEYS}, "name": task_name(task, settings)}
            if "data" in task:
                task["data"] = str(Path(need(data, task["data"], self.name)).resolve())
            tasks.append(task)
        return tasks

    def run(self, backend: Any, out_dir: Path, data: Mapping[str, Path], model: str,
            settings: Mapping[str, Any], seed: int) -> None:
        from pipeline.hub_data import mirror_workdir

        tasks, out_dir = self.lm_eval_tasks(data, settings), Path(out_dir).resolve()
        with mirror_workdir():  # offline clusters and the rehearsal: lm-eval's datasets from the local hub mirror
            backend.run_academic(tasks, out_dir, model_name=model, batch_size=settings.get("batch_size", 16),
                                 limit=settings.get("limit"), random_seed=seed,
                                 confirm_run_unsafe_code=settings.get("confirm_run_unsafe_code", False),
                                 **harness_options(settings))

    def score(self, model: str, generations: Path, judgments: Path | None, data: Mapping[str, Path],
              settings: Mapping[str, Any], world: Mapping[str, Any] | None) -> dict:
        summary = read_json(generations, schema="academic_results")
        metrics, lengths = {}, []
        for name, task in summary["tasks"].items():
            stderr = None if task.get("stderr") is None else 100 * task["stderr"]
            # lm-eval's accuracies and exact matches are fractions; tables show percent, as the papers do.
            metrics[name] = metric(100 * task["value"], stderr, task["n"], lm_eval_metric=task["metric"],
                                   lm_eval_filter=task["filter"], num_fewshot=task.get("num_fewshot"))
            if "mean_length" in task:
                lengths.append(task["mean_length"])
        score = {"suite": self.name, "version": self.version, "model": model,
                 "n": sum(t["n"] for t in summary["tasks"].values()), "metrics": metrics,
                 "lm_eval_version": summary.get("lm_eval_version"), "limit": summary.get("limit")}
        if lengths:
            score["mean_length"] = sum(lengths) / len(lengths)
        return score
