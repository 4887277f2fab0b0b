"""Generation stage: one model load answers every chat suite's prompts (all suites' rounds batched together) and
runs the harness suites (lm-eval) on the same loaded model; each suite's file is written in its upstream format.

    python -m evals.generate --model-dir results/micro/models/dpo --model dpo \\
        --suites alpaca_eval mt_bench arena_hard academic \\
        --data alpaca_eval_baseline=results/micro/data/alpaca_eval_baseline.json ... \\
        --generation-json '{"backend": "transformers", ...}' --evals-json '{...the evals block...}' \\
        --out-dir results/micro/generations/dpo
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

from evals.registry import AnswerRounds, ChatSuite, HarnessSuite, Suite, get_suite
from evals.suites import parse_data_args
from pipeline.cli import entry_point
from pipeline.provenance import verify_checkpoint
from pipeline.io import InputError
from pipeline.logs import get_logger

log = get_logger("evals.generate")


def run_rounds(backend, jobs: Mapping[str, AnswerRounds]) -> dict[str, list[dict]]:
    """Drive every suite's answering coroutine: round k of all suites goes to the backend together (one call per
    distinct sampling setting), each suite receives its own answers in order, until every suite has returned."""
    pending: dict[str, tuple[list[list[dict]], dict[str, Any]]] = {}
    results: dict[str, list[dict]] = {}
    for name, job in jobs.items():
        pending[name] = next(job)
    while pending:
        groups: dict[str, list[str]] = {}
        for name, (_, sampling) in pending.items():
            groups.setdefault(json.dumps(sampling, sort_keys=True), []).append(name)
        answers: dict[str, list[str]] = {}
        for key, names in groups.items():
            conversations = [c for name in names for c in pending[name][0]]
            started = time.perf_counter()
            outputs = backend.generate(conversations, **json.loads(key))
            log.info("%d conversations of %s in %.1f s", len(conversations), ", ".join(names),
                     time.perf_counter() - started)
            start = 0
            for name in names:
                count = len(pending[name][0])
                answers[name] = outputs[start:start + count]
                start += count
        next_pending = {}
        for name in pending:
            try:
                next_pending[name] = jobs[name].send(answers[name])
            except StopIteration as stop:
                results[name] = stop.value
        pending = next_pending
    return results


def generate_all(backend, suites: Mapping[str, Suite], evals: Mapping[str, Any], data: Mapping[str, Path],
                 model: str, seed: int, out_dir: Path) -> None:
    """Answer the chat suites, then run the harness suites, with one backend (one model load)."""
    chat = {n: s for n, s in suites.items() if isinstance(s, ChatSuite)}
    results = run_rounds(backend, {n: s.answer(data, model, evals[n]) for n, s in chat.items()})
    for name, suite in chat.items():
        suite.write_generations(out_dir / suite.generation_file, results[name])
        log.info("%s/%s: %d answers", model, name, len(results[name]))
    for name, suite in suites.items():
        if isinstance(suite, HarnessSuite):
            started = time.perf_counter()
            target = out_dir / suite.generation_file
            suite.run(backend, target.parent, data, model, evals[name], seed)
            if not target.is_file():
                raise RuntimeError(f"suite {name} finished without writing {target}")
            log.info("%s/%s: done in %.1f s", model, name, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--model", required=True, help="the model's name in tables and generator fields")
    parser.add_argument("--suites", nargs="+", required=True)
    parser.add_argument("--data", nargs="*", default=[], metavar="KIND=PATH", help="data-stage files by kind")
    parser.add_argument("--generation-json", required=True, help="the config's `generation` block")
    parser.add_argument("--evals-json", required=True, help="the config's `evals` block")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    # Offline before any Hugging Face import: the harness' local tasks and our checkpoints need no hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    evals = json.loads(args.evals_json)
    missing = [s for s in args.suites if s not in evals]
    if missing:
        raise InputError(f"--suites {missing}: not in the evals block ({sorted(evals)})")
    suites = {name: get_suite(name) for name in args.suites}
    data = parse_data_args(args.data)
    from evals.backends import make_backend

    started = time.perf_counter()
    verify_checkpoint(args.model_dir)  # never evaluate weights that differ from the hash the tables will name
    backend = make_backend(args.model_dir, {**json.loads(args.generation_json), "seed": args.seed})
    log.info("loaded %s in %.1f s", args.model_dir, time.perf_counter() - started)
    generate_all(backend, suites, evals, data, args.model, args.seed, args.out_dir)
    if getattr(backend, "records", None) is not None:   # an inference rule's trace (best-of-n: every candidate)
        from pipeline.io import write_jsonl
        from pipeline.provenance import INFERENCE_TRACE

        write_jsonl(args.out_dir / INFERENCE_TRACE, backend.records)


if __name__ == "__main__":
    entry_point(main)
