"""Data stage of real studies: hub datasets written in the same files and formats as the micro world's data stage
(world/data.py OUTPUTS), so every later rule reads them unchanged.

    python -m pipeline.hub_data --config-json '{...data block...}' --seed 0 --out-dir results/<study>/data

The config's `data:` block names, per output file, a dataset, its split, an optional revision and `data_files`,
how many rows to take, and a column mapping into our formats (values are column names, or dotted paths into nested
columns such as `turns.0.content`). Datasets are read with `datasets.load_dataset`, the real library. Files only the
micro world has (`pretrain`, the gold `eval_items`, the academic local task files) are not written: real studies
start from a pretrained `base.hub_id`, have no gold answers and run the standard lm-eval tasks.

Offline clusters: with a local mirror root (`data.mirror`, or the environment variable named by MIRROR_ENV, which
wins), a dataset id `owner/name` is read from `<root>/owner/name/` (a folder laid out like the hub repository,
e.g. made by `huggingface-cli download --repo-type dataset owner/name --local-dir <root>/owner/name`); so are the
base model (methods/base_model.py) and lm-eval's task datasets (``mirror_workdir``). The workflow exports
`data.mirror` as MIRROR_ENV to every job (workflow/rules/common.smk).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

from pipeline.cli import entry_point
from pipeline.formats import assistant, kto_rows, user
from pipeline.io import InputError, write_json, write_jsonl, write_text
from pipeline.logs import get_logger

log = get_logger("pipeline.hub_data")

MIRROR_ENV = "ALIGNMENT_BENCH_HUB_MIRROR"

# Files this stage writes (the same names as world/data.py OUTPUTS; the Snakemake rule lists them).
OUTPUTS = {
    "sft": "sft.jsonl",
    "prefs": "prefs.jsonl",
    "kto": "kto.jsonl",                  # derived from prefs (chosen desirable, rejected undesirable), as world/data.py
    "rm_prefs": "rm_prefs.jsonl",
    "online_prompts": "online_prompts.jsonl",
    "alpaca_eval_baseline": "alpaca_eval_baseline.json",
    "mt_bench_questions": "mt_bench_questions.jsonl",
    "arena_hard_questions": "arena_hard_questions.jsonl",
    "arena_hard_baseline": "arena_hard_baseline.jsonl",
    "mt_bench_reference": "mt_bench_reference.jsonl",   # FastChat's reference_answer/gpt-4.jsonl (a hub file)
}
SOURCES = tuple(k for k in OUTPUTS if k != "kto")   # the `data:` keys naming a dataset or a file
# Written only when the config names them: upstream's df_gamed.csv (AlpacaEval's length_controlled_v1 GLM) and the
# report's per-iteration prompt sets (online_prompts_iter<t>, read by iteration t of the iterative methods).
OPTIONAL = {"alpaca_eval_gamed": "alpaca_eval_gamed.csv"}
ITERATION_PROMPTS = re.compile(r"online_prompts_iter[1-9][0-9]*")
# Sources that are one file of a hub repository (a dataset or a space), not a `datasets` dataset:
# {repo, repo_type, file, revision?}; with a mirror, <root>/<repo>/<file>.
FILE_SOURCES = ("mt_bench_reference", "alpaca_eval_gamed")


def outputs(data: dict) -> dict[str, str]:
    """The files this stage writes for a config's ``data`` block: OUTPUTS plus the optional ones it names."""
    extra = {k: v for k, v in OPTIONAL.items() if k in data}
    extra.update({k: f"{k}.jsonl" for k in sorted(data) if ITERATION_PROMPTS.fullmatch(k)})
    return {**OUTPUTS, **extra}

# Per output: format -> the column-mapping keys it needs (required, optional).
FORMATS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "sft": {"messages": (("messages",), ()), "prompt_response": (("prompt", "response"), ())},
    "prefs": {"conversations": (("chosen", "rejected"), ()), "strings": (("prompt", "chosen", "rejected"), ()),
              "ranked": (("prompt", "answers"), ())},
    "online_prompts": {"messages": (("prompt",), ()), "text": (("prompt",), ())},
    "alpaca_eval_baseline": {"alpaca_eval": (("instruction", "output"), ("generator", "dataset"))},
    "mt_bench_questions": {"mt_bench": (("question_id", "category", "turns"), ("reference",))},
    "arena_hard_questions": {"arena_hard": (("uid", "prompt"), ("category",))},
    "arena_hard_baseline": {"arena_hard": (("uid", "answer"), ("model",))},
}
FORMATS["rm_prefs"] = FORMATS["prefs"]
DEFAULT_FORMAT = {"sft": "messages", "prefs": "conversations", "rm_prefs": "conversations",
                  "online_prompts": "messages"}


def _where(kind: str, source: dict) -> str:
    return f"config key data.{kind} (dataset {source['dataset']!r})"


def resolve_repo(repo_id: str, mirror: str | None, what: str) -> tuple[str, bool]:
    """A hub repository id, or its folder under the local mirror root (the environment variable wins)."""
    root = os.environ.get(MIRROR_ENV) or mirror
    if not root:
        return repo_id, False
    local = Path(root) / repo_id
    if not local.is_dir():
        raise InputError(f"config key data.mirror: no {local} for {what} {repo_id!r} (mirror root {root}"
                         f"{' from ' + MIRROR_ENV if os.environ.get(MIRROR_ENV) else ''})")
    return str(local), True


def fetch_file(kind: str, source: dict, mirror: str | None) -> Path:
    """One file of a hub repository: ``<mirror root>/<repo>/<file>`` offline, else ``hf_hub_download``."""
    for key in ("repo", "file"):
        if not isinstance(source.get(key), str):
            raise InputError(f"config key data.{kind}.{key}: expected the hub repository's {key} as a string")
    root = os.environ.get(MIRROR_ENV) or mirror
    if root:
        local = Path(root) / source["repo"] / source["file"]
        if not local.is_file():
            raise InputError(f"config key data.{kind}: no {local} in the mirror (repository {source['repo']!r}, "
                             f"file {source['file']!r})")
        return local
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=source["repo"], filename=source["file"],
                                    repo_type=source.get("repo_type", "dataset"), revision=source.get("revision")))
    except Exception as err:
        raise InputError(f"config key data.{kind}: cannot download {source['file']!r} from {source['repo']!r}: "
                         f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None


def mt_bench_reference_rows(kind: str, path: Path) -> list[dict]:
    """FastChat's ``reference_answer/gpt-4.jsonl`` rows as they are (FastChat's answer format)."""
    from pipeline.io import read_jsonl

    rows = read_jsonl(path, schema="mt_bench_answer")
    if not rows:
        raise InputError(f"config key data.{kind}: {path} has no reference answers")
    return rows


@contextlib.contextmanager
def mirror_workdir():
    """Inside, the working directory is the mirror root (when one is set), so libraries that load hub datasets by id
    (lm-eval's tasks) read ``<root>/owner/name/``: datasets.load_dataset takes a relative ``owner/name`` that is a
    local folder before the hub (datasets/load.py dataset_module_factory). Callers pass absolute paths."""
    root = os.environ.get(MIRROR_ENV)
    if not root:
        yield
        return
    before = os.getcwd()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(before)


def resolve_path(source: dict, mirror: str | None) -> tuple[str, bool]:
    """The path given to load_dataset: the hub id, or its folder under the local mirror root."""
    return resolve_repo(source["dataset"], mirror, "dataset")


def load_rows(kind: str, source: dict, mirror: str | None, seed: int) -> list[dict]:
    import datasets

    path, local = resolve_path(source, mirror)
    kwargs: dict[str, Any] = {"split": source.get("split", "train")}
    if source.get("config"):
        kwargs["name"] = source["config"]
    if source.get("data_files"):
        kwargs["data_files"] = source["data_files"]
    if source.get("revision") and not local:
        kwargs["revision"] = source["revision"]
    try:
        ds = datasets.load_dataset(path, **kwargs)
    except Exception as err:  # the library's errors (missing split, file, repo) name the cause
        raise InputError(f"{_where(kind, source)}: cannot load split {kwargs['split']!r} from {path}: "
                         f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    if source.get("shuffle"):
        ds = ds.shuffle(seed=seed)
    rows = source.get("rows")
    if rows is not None:
        if rows > len(ds):
            raise InputError(f"config key data.{kind}.rows: {rows} rows asked, dataset {source['dataset']!r} split "
                             f"{kwargs['split']!r} has {len(ds)}")
        ds = ds.select(range(rows))
    return list(ds)


_MISSING = object()


def get_path(row: dict, path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and re.fullmatch(r"-?\d+", part) and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


class Mapper:
    """Reads the mapped columns of one source; a wrong mapping fails naming the config key and the dataset."""

    def __init__(self, kind: str, source: dict, rows: list[dict]):
        self.kind, self.source = kind, source
        family = "online_prompts" if ITERATION_PROMPTS.fullmatch(kind) else kind
        self.format = source.get("format", DEFAULT_FORMAT.get(family) or next(iter(FORMATS[family])))
        if self.format not in FORMATS[family]:
            raise InputError(f"config key data.{kind}.format: {self.format!r} is not one of {sorted(FORMATS[family])}")
        required, optional = FORMATS[family][self.format]
        self.columns = dict(source.get("columns", {}))
        unknown = sorted(set(self.columns) - set(required) - set(optional))
        if unknown:
            raise InputError(f"config key data.{kind}.columns: unknown keys {unknown} for format {self.format!r} "
                             f"(expected {list(required)}, optionally {list(optional)})")
        for key in required:
            self.columns.setdefault(key, key)
        self.available = sorted(rows[0]) if rows else []

    def has(self, key: str) -> bool:
        return key in self.columns

    def get(self, row: dict, key: str, i: int, kind_of: type | tuple | None = None) -> Any:
        value = get_path(row, self.columns[key])
        if value is _MISSING:
            raise InputError(f"config key data.{self.kind}.columns.{key}: column {self.columns[key]!r} not in dataset "
                             f"{self.source['dataset']!r} (row {i + 1}; its columns: {self.available})")
        if kind_of is not None and not isinstance(value, kind_of):
            raise InputError(f"config key data.{self.kind}.columns.{key}: column {self.columns[key]!r} of dataset "
                             f"{self.source['dataset']!r} is a {type(value).__name__} (row {i + 1}), expected "
                             f"{kind_of.__name__ if isinstance(kind_of, type) else ' or '.join(t.__name__ for t in kind_of)}")
        return value

    def messages(self, row: dict, key: str, i: int) -> list[dict]:
        value = self.get(row, key, i, list)
        if not value or not all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
            raise InputError(f"config key data.{self.kind}.columns.{key}: column {self.columns[key]!r} of dataset "
                             f"{self.source['dataset']!r} is not a list of {{role, content}} messages (row {i + 1})")
        return [{"role": m["role"], "content": m["content"]} for m in value]






HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def hh_messages(text: str) -> list[dict]:
    """Anthropic HH-style text ('\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nAssistant:') as chat messages."""
    parts = HH_TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    messages = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        content = content.strip()
        if content:
            messages.append({"role": "user" if speaker == "Human" else "assistant", "content": content})
    return messages


def sft_rows(m: Mapper, rows: list[dict]) -> list[dict]:
    if m.format == "messages":
        return [{"messages": m.messages(r, "messages", i)} for i, r in enumerate(rows)]
    return [{"messages": user(m.get(r, "prompt", i, str)) + assistant(m.get(r, "response", i, str))}
            for i, r in enumerate(rows)]


def preference_rows(m: Mapper, rows: list[dict]) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        if m.format == "conversations":
            # Full conversations ending in the two assistant answers (hendrydong/preference_700K, UltraFeedback
            # binarized): the prompt is everything before the last message.
            chosen, rejected = m.messages(r, "chosen", i), m.messages(r, "rejected", i)
            if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant" or len(chosen) < 2:
                raise InputError(f"config key data.{m.kind}.columns: dataset {m.source['dataset']!r} row {i + 1}: "
                                 f"chosen/rejected must be conversations ending in an assistant message")
            prompt = chosen[:-1]
            out.append({"prompt": prompt, "chosen": chosen[-1:], "rejected": rejected[-1:]})
        elif m.format == "strings":
            out.append({"prompt": user(m.get(r, "prompt", i, str)), "chosen": assistant(m.get(r, "chosen", i, str)),
                        "rejected": assistant(m.get(r, "rejected", i, str))})
        else:  # ranked (Nectar): HH-style prompt text, answers [{answer, model, rank}], rank 1 = best
            prompt = hh_messages(m.get(r, "prompt", i, str))
            answers = [a for a in m.get(r, "answers", i, list) if isinstance(a, dict) and a.get("rank") is not None]
            if not prompt or len(answers) < 2 or not all("answer" in a for a in answers):
                raise InputError(f"config key data.{m.kind}.columns: dataset {m.source['dataset']!r} row {i + 1}: "
                                 f"expected an HH-style prompt and >= 2 ranked answers [{{answer, rank}}]")
            ranked = sorted(answers, key=lambda a: a["rank"])
            if ranked[0]["answer"] == ranked[-1]["answer"]:
                continue
            out.append({"prompt": prompt, "chosen": assistant(ranked[0]["answer"].strip()),
                        "rejected": assistant(ranked[-1]["answer"].strip())})
    return out




def prompt_rows(m: Mapper, rows: list[dict]) -> list[dict]:
    if m.format == "text":
        return [{"prompt": user(m.get(r, "prompt", i, str))} for i, r in enumerate(rows)]
    out = []
    for i, r in enumerate(rows):
        prompt = m.messages(r, "prompt", i)
        if prompt[-1]["role"] == "assistant":  # a context ending in an answer: the prompt is what precedes it
            prompt = prompt[:-1]
        if prompt:
            out.append({"prompt": prompt})
    return out


def alpaca_eval_rows(m: Mapper, rows: list[dict]) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        row = {"instruction": m.get(r, "instruction", i, str), "output": m.get(r, "output", i, str),
               "generator": m.get(r, "generator", i, str) if m.has("generator") else m.source.get("model", "baseline"),
               "dataset": m.get(r, "dataset", i, str) if m.has("dataset") else "alpaca_eval"}
        out.append(row)
    return out


def mt_bench_rows(m: Mapper, rows: list[dict]) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        row = {"question_id": int(m.get(r, "question_id", i, (int, str))), "category": m.get(r, "category", i, str),
               "turns": list(m.get(r, "turns", i, list))}
        if m.has("reference"):
            reference = get_path(r, m.columns["reference"])
            if reference not in (_MISSING, None) and list(reference):  # upstream: math, reasoning, coding only
                row["reference"] = list(reference)
        out.append(row)
    return out


def arena_question_rows(m: Mapper, rows: list[dict]) -> list[dict]:
    return [{"uid": str(m.get(r, "uid", i, (str, int))),
             "category": m.get(r, "category", i, str) if m.has("category") else m.source.get("category", "hard_prompt"),
             "prompt": m.get(r, "prompt", i, str)} for i, r in enumerate(rows)]


def arena_baseline_rows(m: Mapper, rows: list[dict], questions: dict[str, dict]) -> list[dict]:
    out = []  # no ``metadata``: the Arena-Hard suite computes style features where an answer has none
    for i, r in enumerate(rows):
        uid = str(m.get(r, "uid", i, (str, int)))
        if questions and uid not in questions:
            continue  # answers to questions not taken (rows of the question set)
        answer = m.get(r, "answer", i, str)
        model = m.get(r, "model", i, str) if m.has("model") else m.source.get("model", "baseline")
        prompt = questions[uid]["prompt"] if uid in questions else ""
        out.append({"uid": uid, "ans_id": f"{model}-{uid}", "model": model,
                    "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": {"answer": answer}}]})
    return out


WRITERS: dict[str, tuple[Callable, str]] = {
    "sft": (sft_rows, "sft_row"),
    "prefs": (preference_rows, "preference_row"),
    "rm_prefs": (preference_rows, "preference_row"),
    "online_prompts": (prompt_rows, "prompt_row"),
    "mt_bench_questions": (mt_bench_rows, "mt_bench_question"),
    "arena_hard_questions": (arena_question_rows, "arena_hard_question"),
}


def write_hub_data(data: dict, seed: int, out_dir: Path) -> None:
    mirror = data.get("mirror")
    missing = [k for k in SOURCES if k not in data]
    if missing:
        raise InputError(f"config key data: missing {missing} (each names a dataset or a hub file)")
    counts = {}
    questions: dict[str, dict] = {}
    files = outputs(data)
    for kind in [k for k in files if k != "kto"]:
        source = data[kind]
        if kind == "mt_bench_reference":
            out = mt_bench_reference_rows(kind, fetch_file(kind, source, mirror))
            write_jsonl(out_dir / files[kind], out, "mt_bench_answer")
            counts[kind] = len(out)
            continue
        if kind == "alpaca_eval_gamed":
            write_text(out_dir / files[kind], fetch_file(kind, source, mirror).read_text())
            counts[kind] = 1
            continue
        rows = load_rows(kind, source, mirror, seed)
        if not rows:
            raise InputError(f"{_where(kind, source)}: no rows")
        mapper = Mapper(kind, source, rows)
        if kind == "alpaca_eval_baseline":
            out = alpaca_eval_rows(mapper, rows)
            write_json(out_dir / OUTPUTS[kind], out, "alpaca_eval_outputs")
        elif kind == "arena_hard_baseline":
            out = arena_baseline_rows(mapper, rows, questions)
            missing_uids = sorted(set(questions) - {r["uid"] for r in out})
            if missing_uids:
                raise InputError(f"{_where(kind, source)}: no baseline answer for {len(missing_uids)} questions "
                                 f"(e.g. uid {missing_uids[0]!r})")
            write_jsonl(out_dir / OUTPUTS[kind], out, "arena_hard_answer")
        else:
            convert, schema = WRITERS["online_prompts" if ITERATION_PROMPTS.fullmatch(kind) else kind]
            out = convert(mapper, rows)
            write_jsonl(out_dir / files[kind], out, schema)
            if kind == "prefs":
                write_jsonl(out_dir / OUTPUTS["kto"], kto_rows(out), "kto_row")
                counts["kto"] = 2 * len(out)
            if kind == "arena_hard_questions":
                questions = {q["uid"]: q for q in out}
        counts[kind] = len(out)
    log.info("wrote %s", ", ".join(f"{k}={v}" for k, v in counts.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-json", required=True, help="the config's `data` block as JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of the optional row shuffles")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    write_hub_data(json.loads(args.config_json), args.seed, args.out_dir)


if __name__ == "__main__":
    entry_point(main)
