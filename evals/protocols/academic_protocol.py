"""Academic benchmarks through the real lm-eval harness.

Standard tasks (GSM8K, MMLU, ARC, TruthfulQA, HumanEval, MBPP) run on the configs lm-eval ships; the micro world's
held-out items run as local task YAMLs, materialised per run from the templates in ``evals/lm_eval_tasks/``.

    python -m evals.protocols.academic_protocol --model-dir results/micro/models/dpo --out-dir results/micro/academic/dpo \\
        --batch-size 8 --tasks-json '[{"name": "micro_arith_gen", "data": "results/micro/data/academic_gen.jsonl"},
                                      {"name": "micro_choice_mc", "data": "results/micro/data/academic_mc.jsonl"}]'

A task is a dict:

* ``{"name": "gsm8k", "num_fewshot": 8}``: a task or group that lm-eval ships, on its own YAML and metrics.
* ``{"name": "micro_arith_gen", "data": "/abs/or/rel/file.jsonl"}``: a local task built from the template
  ``evals/lm_eval_tasks/<template>.yaml`` (``template`` defaults to ``name``), with the data file filled in.

Optional keys: ``num_fewshot``; ``metric`` (the number academic.json reports, e.g. ``"acc_norm"`` or
``"exact_match,strict-match"``; default: ``DEFAULT_METRICS`` or the task's first metric); for local tasks
``template``, ``fewshot_data`` (a JSONL the shots are drawn from: shots are never drawn from the held-out file) and
``overrides`` (top-level YAML keys replaced in the materialised copy, e.g. ``{"generation_kwargs": {...}}``).

Outputs in ``out_dir`` (each written atomically):

* ``academic.json``: ``{"suite": "academic", "model": ..., "tasks": {name: {"metric", "value", "stderr", "n", ...}}}``
* ``lm_eval_results.json``: lm-eval's own results dict, made JSON-safe, per-sample logs left out
* ``lm_eval_samples/<task>.jsonl``: lm-eval's per-sample logs (prompt, raw and filtered responses, metrics)
* ``tasks/<name>.yaml``: the local task YAMLs that were run (``tasks_dir`` to put them elsewhere)
"""

from __future__ import annotations

import argparse
import copy
import difflib
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from pipeline.io import write_text

if TYPE_CHECKING:  # heavy imports stay inside the functions that need them
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

SUITE = "academic"
VERSION = "1"  # bump on any change to how tasks are built or scored (task YAMLs carry their own metadata.version)
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "lm_eval_tasks"
DATA_PLACEHOLDER = "__DATA_FILE__"

# The number academic.json reports per standard task, as lm-eval's "metric,filter" key. Conventions of the field:
# ARC and HellaSwag by length-normalised accuracy (Open LLM Leaderboard); GSM8K by flexible-extract, since chat
# models rarely end with "#### <n>". A task dict's "metric" overrides these; other tasks report their first metric.
DEFAULT_METRICS = {
    "gsm8k": "exact_match,flexible-extract",
    "gsm8k_cot": "exact_match,flexible-extract",
    "mmlu": "acc,none",
    "arc_challenge": "acc_norm,none",
    "arc_easy": "acc_norm,none",
    "hellaswag": "acc_norm,none",
    "truthfulqa_mc1": "acc,none",
    "truthfulqa_mc2": "acc,none",
    "humaneval": "pass@1,create_test",
    "mbpp": "pass_at_1,none",
    "humaneval_instruct": "pass@1,create_test",
    "mbpp_instruct": "pass_at_1,extract_code",
}
# The code tasks' chat-model variants in lm-eval 0.4.13 (lm_eval/tasks/humaneval/humaneval_instruct.yaml,
# lm_eval/tasks/mbpp/mbpp_instruct.yaml): an instruction plus a ```python answer prefix and a code-extracting
# filter. The base variants score the raw continuation as code, so a chat answer's prose and fences fail there.
INSTRUCT_VARIANTS = {"humaneval": "humaneval_instruct", "mbpp": "mbpp_instruct"}
# Harness settings when a config is silent: the Open LLM Leaderboard v1's (base-model prompts, no chat template,
# few-shot examples in one user turn); the RLHF Workflow report states neither.
DEFAULT_APPLY_CHAT_TEMPLATE = False
DEFAULT_FEWSHOT_AS_MULTITURN = False


def task_variant(name: str, apply_chat_template: bool) -> str:
    """The lm-eval task run for a configured code task: its instruct variant when a chat template is on."""
    return INSTRUCT_VARIANTS.get(name, name) if apply_chat_template else name

_TASK_KEYS = {"name", "data", "template", "fewshot_data", "num_fewshot", "metric", "overrides"}
_LOCAL_ONLY_KEYS = {"template", "fewshot_data", "overrides"}


class AcademicTaskError(ValueError):
    """A task that cannot be built or read: the message names the task and the file (YAML or data) at fault."""


@dataclass(frozen=True)
class TaskSpec:
    """One requested task; ``data`` set means a local task built from a template."""

    name: str
    data: Path | None = None
    template: str | None = None
    fewshot_data: Path | None = None
    num_fewshot: int | None = None
    metric: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.data is not None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TaskSpec":
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d["name"]:
            raise AcademicTaskError(f"task {d!r}: expected a dict with a non-empty string 'name'")
        unknown = set(d) - _TASK_KEYS
        if unknown:
            raise AcademicTaskError(
                f"task {d['name']!r}: unknown keys {sorted(unknown)}; allowed: {sorted(_TASK_KEYS)}"
            )
        if "data" not in d and set(d) & _LOCAL_ONLY_KEYS:
            raise AcademicTaskError(
                f"task {d['name']!r}: {sorted(set(d) & _LOCAL_ONLY_KEYS)} only apply to local tasks (give 'data')"
            )
        shots = d.get("num_fewshot")
        if shots is not None and (not isinstance(shots, int) or isinstance(shots, bool) or shots < 0):
            raise AcademicTaskError(f"task {d['name']!r}: num_fewshot must be an integer >= 0, got {shots!r}")
        overrides = d.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise AcademicTaskError(f"task {d['name']!r}: overrides must be a dict of YAML keys")
        return cls(
            name=d["name"],
            data=Path(d["data"]).expanduser().resolve() if d.get("data") is not None else None,
            template=d.get("template"),
            fewshot_data=Path(d["fewshot_data"]).expanduser().resolve() if d.get("fewshot_data") else None,
            num_fewshot=shots,
            metric=d.get("metric"),
            overrides=dict(overrides),
        )


def parse_tasks(tasks: Iterable[dict[str, Any] | TaskSpec]) -> list[TaskSpec]:
    specs = [t if isinstance(t, TaskSpec) else TaskSpec.from_dict(t) for t in tasks]
    if not specs:
        raise AcademicTaskError("no tasks given")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AcademicTaskError(f"tasks named more than once: {dupes}")
    return specs


# ---------------------------------------------------------------------------------------------- files


def _json_safe(obj: Any) -> Any:
    """lm-eval's results hold numpy scalars, sets, callables, dtypes and NaN; turn them into strict JSON values
    (lm-eval's own handle_non_serializable for the types, NaN/inf to null)."""
    from lm_eval.utils import handle_non_serializable

    def clean(o: Any) -> Any:
        if isinstance(o, float):
            return o if math.isfinite(o) else None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    return clean(json.loads(json.dumps(obj, default=handle_non_serializable)))


def _write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(_json_safe(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_jsonl(path: Path, task: str, required: list[str], role: str) -> int:
    """Fail with the file, row and missing field before lm-eval (whose datasets errors name neither)."""
    if not path.is_file():
        raise AcademicTaskError(f"task {task!r}: {role} file not found: {path}")
    rows = 0
    with path.open(encoding="utf-8") as handle:
        for i, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise AcademicTaskError(f"task {task!r}: {path}, row {i}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise AcademicTaskError(f"task {task!r}: {path}, row {i}: expected a JSON object")
            missing = [k for k in required if k not in row]
            if missing:
                raise AcademicTaskError(f"task {task!r}: {path}, row {i}: missing fields {missing}")
            rows += 1
    if rows == 0:
        raise AcademicTaskError(f"task {task!r}: {role} file has no rows: {path}")
    return rows


# ---------------------------------------------------------------------------------------------- local task YAMLs


def available_templates() -> list[str]:
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml"))


def _load_template(spec: TaskSpec) -> tuple[Path, dict[str, Any]]:
    import yaml

    name = spec.template or spec.name
    path = TEMPLATES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise AcademicTaskError(
            f"task {spec.name!r}: no template {path} (templates: {', '.join(available_templates()) or 'none'})"
        )
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise AcademicTaskError(f"task {spec.name!r}: template {path} is not valid YAML: {err}") from None
    if not isinstance(cfg, dict):
        raise AcademicTaskError(f"task {spec.name!r}: template {path} is not a YAML mapping")
    dataset_kwargs = cfg.get("dataset_kwargs")
    data_files = dataset_kwargs.get("data_files") if isinstance(dataset_kwargs, dict) else None
    test_file = data_files.get(cfg.get("test_split", "test")) if isinstance(data_files, dict) else None
    if cfg.get("dataset_path") != "json" or test_file != DATA_PLACEHOLDER:
        raise AcademicTaskError(
            f"task {spec.name!r}: template {path} must have dataset_path: json and "
            f"dataset_kwargs.data_files.<test_split>: {DATA_PLACEHOLDER}"
        )
    if not isinstance(cfg.get("metadata"), dict) or "version" not in cfg["metadata"]:
        raise AcademicTaskError(f"task {spec.name!r}: template {path} lacks metadata.version")
    return path, cfg


def materialize_tasks(tasks: Iterable[dict[str, Any] | TaskSpec], tasks_dir: str | Path) -> dict[str, Path]:
    """Write one lm-eval task YAML per local task into ``tasks_dir``, with the absolute data path filled in, and
    check that lm-eval's indexer registers each of them (it skips a YAML it cannot read without a word:
    lm_eval/tasks/_index.py, TaskIndex.build). Returns {task name: YAML path}; standard tasks are ignored."""
    import yaml

    tasks_dir = Path(tasks_dir).resolve()
    written: dict[str, Path] = {}
    for spec in parse_tasks(tasks):
        if not spec.is_local:
            continue
        template_path, cfg = _load_template(spec)
        required = list(cfg["metadata"].get("required_fields") or [])
        n_rows = _check_jsonl(spec.data, spec.name, required, "data")
        split = cfg.get("test_split", "test")
        cfg = copy.deepcopy(cfg)
        cfg["task"] = spec.name
        cfg["dataset_kwargs"]["data_files"][split] = str(spec.data)
        if spec.fewshot_data is not None:
            _check_jsonl(spec.fewshot_data, spec.name, required, "fewshot_data")
            cfg["dataset_kwargs"]["data_files"]["fewshot"] = str(spec.fewshot_data)
            cfg["fewshot_split"] = "fewshot"
        for key, value in spec.overrides.items():
            if key in {"task", "dataset_path", "dataset_kwargs", "test_split", "metadata"}:
                raise AcademicTaskError(f"task {spec.name!r}: overrides may not replace {key!r}")
            cfg[key] = value
        cfg["metadata"] = {
            **cfg["metadata"],
            "template": str(template_path),
            "data_file": str(spec.data),
            "data_sha256": _sha256(spec.data),
            "data_rows": n_rows,
        }
        path = tasks_dir / f"{spec.name}.yaml"
        header = f"# Written by evals/protocols/academic_protocol.py from {template_path}; edit the template, not this file.\n"
        write_text(path, header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        written[spec.name] = path
    if written:
        check_registered(written, tasks_dir)
    return written


def check_registered(expected: dict[str, Path], tasks_dir: str | Path) -> None:
    """Index ``tasks_dir`` the way lm-eval's TaskManager(include_path=...) does and raise, naming the task and its
    YAML and the reason, for every expected task that lm-eval would not register."""
    from lm_eval.tasks._index import TaskIndex
    from lm_eval.tasks._yaml_loader import load_yaml

    index = TaskIndex.build([Path(tasks_dir)])
    problems = []
    for name, path in expected.items():
        entry = index.get(name)
        if entry is not None and entry.yaml_path is not None and Path(entry.yaml_path).resolve() == path.resolve():
            continue
        try:  # reproduce the error lm-eval swallowed
            cfg = load_yaml(path, resolve_func=True)
            TaskIndex._kind_of(cfg)
            reason = f"it registers task {cfg.get('task')!r}" if cfg.get("task") != name else "not indexed"
            if entry is not None:
                reason = f"task {name!r} is registered from {entry.yaml_path} instead"
        except Exception as err:  # noqa: BLE001 - any parse error is the reason we report
            reason = f"{type(err).__name__}: {err}"
        problems.append(f"task {name!r} from {path}: {reason}")
    if problems:
        raise AcademicTaskError("lm-eval did not register these task YAMLs:\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------------------------------------- lm-eval


_TASK_MANAGERS: dict[bool, "TaskManager"] = {}


def get_task_manager(include_defaults: bool = True) -> "TaskManager":
    """One TaskManager per process: indexing lm-eval's built-in tasks costs ~8 s. Local tasks are loaded by YAML
    path, so one manager serves every study; without built-in tasks it is built in milliseconds."""
    from lm_eval.tasks import TaskManager

    if include_defaults not in _TASK_MANAGERS:
        _TASK_MANAGERS[include_defaults] = TaskManager(include_defaults=include_defaults)
    return _TASK_MANAGERS[include_defaults]


def _load_tasks(
    specs: list[TaskSpec],
    yaml_paths: dict[str, Path],
    task_manager: "TaskManager",
    num_fewshot: int | None,
) -> tuple[list[Any], dict[str, list[str]]]:
    """Build lm-eval Task/Group objects and set each one's shots. Per-task ``num_fewshot`` wins; the run-wide
    ``num_fewshot`` follows simple_evaluate's rule (tasks whose config says 0 shots stay at 0). Returns the objects
    (simple_evaluate accepts them in ``tasks``) and {requested name: its leaf task names}."""
    from lm_eval.api.group import Group

    objects: list[Any] = []
    leaves: dict[str, list[str]] = {}
    for spec in specs:
        if spec.is_local:
            target, where = str(yaml_paths[spec.name]), str(yaml_paths[spec.name])
        else:
            if spec.name not in task_manager.all_tasks:
                close = difflib.get_close_matches(spec.name, task_manager.all_tasks, n=5)
                raise AcademicTaskError(
                    f"task {spec.name!r} is not an lm-eval task, group or tag"
                    + (f" (did you mean {', '.join(close)}?)" if close else "")
                    + "; local tasks need a 'data' file"
                )
            entry = task_manager.task_index[spec.name]
            if entry.kind.name == "TAG":  # a tag has no aggregate row in lm-eval's results: ask for its tasks
                raise AcademicTaskError(
                    f"task {spec.name!r} is an lm-eval tag, not a task or group; list its tasks: {sorted(entry.tags)}"
                )
            target, where = spec.name, str(entry.yaml_path or "lm-eval")
        try:
            loaded = task_manager.load([target])
        except Exception as err:
            raise AcademicTaskError(
                f"task {spec.name!r} ({where}) failed to load: {type(err).__name__}: {err}"
            ) from err
        if spec.is_local and spec.name not in loaded["tasks"]:
            raise AcademicTaskError(f"task {spec.name!r}: {where} built {sorted(loaded['tasks'])} instead")
        for task_name, task in loaded["tasks"].items():
            # lm-eval turns an unknown metric name into None after a failed HF-evaluate lookup, and fails only
            # when scoring (lm_eval/api/registry.py get_metric; api/task.py ConfigurableTask.__init__).
            unknown = [m for m, fn in getattr(task, "_metric_fn_list", {}).items() if fn is None]
            if unknown and task.get_config("process_results") is None:
                raise AcademicTaskError(f"task {task_name!r} ({where}): unknown metrics {unknown}")
            configured = task.get_config("num_fewshot")
            if spec.num_fewshot is not None:
                shots = spec.num_fewshot
            elif num_fewshot is not None and configured != 0:
                shots = num_fewshot
            else:
                shots = configured or 0
            if spec.is_local and shots > 0 and spec.fewshot_data is None:
                raise AcademicTaskError(
                    f"task {spec.name!r}: {shots} shots asked but no 'fewshot_data' given; shots are never drawn from "
                    f"the held-out file {spec.data}"
                )
            task.set_config(key="num_fewshot", value=shots)
        if spec.is_local:
            objects.append(loaded["tasks"][spec.name])
            leaves[spec.name] = [spec.name]
        else:
            top = [g for name, g in loaded.get("groups", {}).items() if name == spec.name]
            objects.extend(top if top else list(loaded["tasks"].values()))
            leaves[spec.name] = sorted(loaded["tasks"])
            if top and not isinstance(top[0], Group):  # pragma: no cover - lm-eval contract
                raise AcademicTaskError(f"task {spec.name!r}: unexpected group type {type(top[0])}")
    return objects, leaves


def _pick_metric(spec: TaskSpec, row: dict[str, Any]) -> tuple[str, str]:
    """The ("metric", "filter") reported for a task, from lm-eval's "metric,filter" keys."""
    keys = [k for k in row if k != "alias" and "," in k and "_stderr," not in k]
    wanted = spec.metric or DEFAULT_METRICS.get(spec.name)
    if wanted is None:
        if not keys:
            raise AcademicTaskError(f"task {spec.name!r}: lm-eval reported no metric (keys: {sorted(row)})")
        key = keys[0]
    elif "," in wanted:
        if wanted not in keys:
            raise AcademicTaskError(f"task {spec.name!r}: metric {wanted!r} not among lm-eval's {keys}")
        key = wanted
    else:
        matches = [k for k in keys if k.split(",", 1)[0] == wanted]
        if not matches:
            raise AcademicTaskError(f"task {spec.name!r}: metric {wanted!r} not among lm-eval's {keys}")
        key = matches[0]
    metric, filt = key.split(",", 1)
    return metric, filt


def _as_float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _mean_response_length(results: dict[str, Any], leaves: list[str]) -> float | None:
    """Mean length in characters of the raw responses of generate-until tasks (from lm-eval's sample logs)."""
    lengths = []
    for leaf in leaves:
        if results.get("configs", {}).get(leaf, {}).get("output_type") != "generate_until":
            continue
        for sample in results.get("samples", {}).get(leaf, []):
            for repeats in sample.get("resps", []):  # one list of repeats per request
                lengths += [len(r) for r in repeats if isinstance(r, str)]
    return sum(lengths) / len(lengths) if lengths else None


def summarize(results: dict[str, Any], specs: list[TaskSpec], leaves: dict[str, list[str]], model: str) -> dict:
    """academic.json from lm-eval's results dict."""
    tasks: dict[str, Any] = {}
    for spec in specs:
        row = results["results"].get(spec.name)
        if row is None:
            raise AcademicTaskError(f"task {spec.name!r}: no results from lm-eval (got {sorted(results['results'])})")
        metric, filt = _pick_metric(spec, row)
        value = _as_float(row[f"{metric},{filt}"])
        if value is None:
            raise AcademicTaskError(
                f"task {spec.name!r}: {metric},{filt} = {row[f'{metric},{filt}']!r} is not a number"
            )
        n = sum(int(results["n-samples"][leaf]["effective"]) for leaf in leaves[spec.name])
        entry: dict[str, Any] = {
            "metric": metric,
            "filter": filt,
            "value": value,
            "stderr": _as_float(row.get(f"{metric}_stderr,{filt}")),
            "n": n,
            "num_fewshot": results.get("n-shot", {}).get(spec.name),
            "higher_is_better": results.get("higher_is_better", {}).get(spec.name, {}).get(metric),
        }
        if spec.is_local:
            entry["data"] = str(spec.data)
        mean_length = _mean_response_length(results, leaves[spec.name])
        if mean_length is not None:
            entry["mean_length"] = mean_length
        tasks[spec.name] = entry
    return {"suite": SUITE, "version": VERSION, "model": model, "tasks": tasks}


def _write_outputs(results: dict[str, Any], summary: dict[str, Any], out_dir: Path) -> None:
    samples = results.pop("samples", None) or {}
    for task_name, rows in samples.items():
        text = "".join(json.dumps(_json_safe(r), ensure_ascii=False, allow_nan=False) + "\n" for r in rows)
        write_text(out_dir / "lm_eval_samples" / f"{task_name}.jsonl", text)
    _write_json(out_dir / "lm_eval_results.json", results)
    _write_json(out_dir / "academic.json", summary)  # last: its presence means the run finished


def _evaluate(
    model: "str | LM",
    model_args: dict[str, Any] | None,
    model_name: str,
    tasks: list[dict[str, Any] | TaskSpec],
    out_dir: str | Path,
    *,
    batch_size: int | str | None,
    limit: int | float | None,
    device: str | None,
    num_fewshot: int | None,
    apply_chat_template: bool | str,
    fewshot_as_multiturn: bool,
    task_manager: "TaskManager | None",
    tasks_dir: str | Path | None,
    confirm_run_unsafe_code: bool,
    log_samples: bool,
    gen_kwargs: dict[str, Any] | None,
    system_instruction: str | None,
    random_seed: int,
) -> dict[str, Any]:
    import lm_eval

    out_dir = Path(out_dir).resolve()
    specs = parse_tasks(tasks)
    yaml_paths = materialize_tasks(specs, tasks_dir if tasks_dir is not None else out_dir / "tasks")
    if confirm_run_unsafe_code:
        # HumanEval's and MBPP's scorers (HF evaluate's code_eval, loaded when the task is built) refuse to run
        # model-written code unless this is set; the caller has confirmed.
        os.environ.setdefault("HF_ALLOW_CODE_EVAL", "1")
    if task_manager is None:
        task_manager = get_task_manager(include_defaults=any(not s.is_local for s in specs))
    objects, leaves = _load_tasks(specs, yaml_paths, task_manager, num_fewshot)
    results = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=objects,
        num_fewshot=None,  # set per task in _load_tasks
        batch_size=batch_size,
        device=device,
        limit=limit,
        log_samples=log_samples,
        apply_chat_template=apply_chat_template,
        fewshot_as_multiturn=fewshot_as_multiturn,
        gen_kwargs=gen_kwargs,
        system_instruction=system_instruction,
        task_manager=task_manager,
        confirm_run_unsafe_code=confirm_run_unsafe_code,
        random_seed=random_seed,
        numpy_random_seed=random_seed,
        torch_random_seed=random_seed,
        fewshot_random_seed=random_seed,
    )
    if results is None:  # not rank 0 of a distributed run: rank 0 writes
        return {}
    summary = summarize(results, specs, leaves, model_name)
    summary["lm_eval_version"] = _lm_eval_version()
    summary["apply_chat_template"] = apply_chat_template
    summary["fewshot_as_multiturn"] = fewshot_as_multiturn
    summary["limit"] = limit
    _write_outputs(results, summary, out_dir)
    return summary


def _lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


def run_academic(
    model_dir: str | Path,
    tasks: list[dict[str, Any]],
    out_dir: str | Path,
    *,
    batch_size: int | str,
    limit: int | float | None = None,
    device: str | None = "cpu",
    num_fewshot: int | None = None,
    apply_chat_template: bool | str = True,
    task_manager: "TaskManager | None" = None,
    confirm_run_unsafe_code: bool = False,
    fewshot_as_multiturn: bool = True,
    model_args: dict[str, Any] | None = None,
    tasks_dir: str | Path | None = None,
    log_samples: bool = True,
    gen_kwargs: dict[str, Any] | None = None,
    system_instruction: str | None = None,
    random_seed: int = 0,
) -> dict[str, Any]:
    """Evaluate a save_pretrained folder with lm-eval's "hf" model on ``tasks``; write and return academic.json.

    ``model_args`` adds HFLM arguments (e.g. ``{"dtype": "bfloat16"}``); it is passed to lm-eval as a dict, not
    the "k=v,k=v" string, so a path with a comma survives. ``confirm_run_unsafe_code`` must be True for HumanEval
    and MBPP (they execute model-written code)."""
    return _evaluate(
        "hf",
        {"pretrained": str(model_dir), **(model_args or {})},
        str(model_dir),
        tasks,
        out_dir,
        batch_size=batch_size,
        limit=limit,
        device=device,
        num_fewshot=num_fewshot,
        apply_chat_template=apply_chat_template,
        fewshot_as_multiturn=fewshot_as_multiturn,
        task_manager=task_manager,
        tasks_dir=tasks_dir,
        confirm_run_unsafe_code=confirm_run_unsafe_code,
        log_samples=log_samples,
        gen_kwargs=gen_kwargs,
        system_instruction=system_instruction,
        random_seed=random_seed,
    )


def run_academic_with_lm(
    lm: "LM",
    tasks: list[dict[str, Any]],
    out_dir: str | Path,
    *,
    model_name: str,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    apply_chat_template: bool | str = True,
    task_manager: "TaskManager | None" = None,
    confirm_run_unsafe_code: bool = False,
    fewshot_as_multiturn: bool = True,
    tasks_dir: str | Path | None = None,
    log_samples: bool = True,
    gen_kwargs: dict[str, Any] | None = None,
    system_instruction: str | None = None,
    random_seed: int = 0,
) -> dict[str, Any]:
    """Evaluate any lm-eval ``LM`` instance (HFLM around a loaded model, vLLM, a test double)."""
    return _evaluate(
        lm,
        None,
        model_name,
        tasks,
        out_dir,
        batch_size=None,
        limit=limit,
        device=None,
        num_fewshot=num_fewshot,
        apply_chat_template=apply_chat_template,
        fewshot_as_multiturn=fewshot_as_multiturn,
        task_manager=task_manager,
        tasks_dir=tasks_dir,
        confirm_run_unsafe_code=confirm_run_unsafe_code,
        log_samples=log_samples,
        gen_kwargs=gen_kwargs,
        system_instruction=system_instruction,
        random_seed=random_seed,
    )


def run_academic_with_model(
    model: Any,
    tokenizer: Any,
    tasks: list[dict[str, Any]],
    out_dir: str | Path,
    *,
    batch_size: int,
    model_name: str | None = None,
    max_length: int | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate an already-loaded transformers model (so one load serves generation and academic evaluation).

    lm-eval's HFLM keeps the model on its current device (``device`` does not apply), calls ``model.eval()`` and
    ``tie_weights()`` on it. Other keyword arguments are those of :func:`run_academic_with_lm`."""
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
    name = model_name or getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
    return run_academic_with_lm(lm, tasks, out_dir, model_name=name, **kwargs)


# ---------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evals.protocols.academic_protocol", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", required=True, help="Hugging Face save_pretrained folder")
    p.add_argument("--tasks-json", required=True, help="JSON list of task dicts, or @file.json")
    p.add_argument("--out-dir", required=True, help="folder for academic.json and lm-eval's outputs")
    p.add_argument("--tasks-dir", default=None, help="where local task YAMLs are written (default OUT_DIR/tasks)")
    p.add_argument("--batch-size", default="1", help="integer or 'auto'")
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=float, default=None, help="examples per task (testing only); <1 is a fraction")
    p.add_argument("--num-fewshot", type=int, default=None, help="shots for tasks that do not name their own")
    p.add_argument("--no-chat-template", action="store_true", help="score raw prompts, without the chat template")
    p.add_argument("--model-args-json", default=None, help='extra HFLM arguments, e.g. {"dtype": "bfloat16"}')
    p.add_argument("--confirm-run-unsafe-code", action="store_true", help="needed for humaneval and mbpp")
    p.add_argument("--online", action="store_true", help="allow the Hugging Face hub (default: offline)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.online:  # before any Hugging Face import reads them
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    raw = args.tasks_json
    tasks = json.loads(Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw)
    if not isinstance(tasks, list):
        raise SystemExit("--tasks-json must be a JSON list of task dicts")
    limit = None if args.limit is None else (int(args.limit) if args.limit >= 1 else args.limit)
    batch_size: int | str = int(args.batch_size) if args.batch_size.isdigit() else args.batch_size
    summary = run_academic(
        args.model_dir,
        tasks,
        args.out_dir,
        batch_size=batch_size,
        limit=limit,
        device=args.device,
        num_fewshot=args.num_fewshot,
        apply_chat_template=not args.no_chat_template,
        confirm_run_unsafe_code=args.confirm_run_unsafe_code,
        model_args=json.loads(args.model_args_json) if args.model_args_json else None,
        tasks_dir=args.tasks_dir,
    )
    for name, t in summary.get("tasks", {}).items():
        print(f"{name}: {t['metric']} ({t['filter']}) = {t['value']:.4f} (n={t['n']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
