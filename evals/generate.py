"""Generation stage: one model load answers every suite's prompts, written in the upstream formats.

    python -m evals.generate --model-dir results/micro/models/dpo --model dpo --items results/micro/data/eval_items.jsonl \
        --suites alpaca_eval --generation-json '{"backend": "transformers", ...}' --out-dir results/micro/generations/dpo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.io import InputError, read_jsonl, write_json
from pipeline.logs import get_logger
from pipeline.cli import run

log = get_logger("evals.generate")


def alpaca_eval_outputs(backend, items: list[dict], model: str) -> list[dict]:
    answers = backend.generate([[{"role": "user", "content": it["turns"][0]}] for it in items])
    return [{"instruction": it["turns"][0], "output": answer, "generator": model, "dataset": "micro_world"}
            for it, answer in zip(items, answers)]


SUITE_WRITERS = {"alpaca_eval": (alpaca_eval_outputs, "alpaca_eval.json", "alpaca_eval_outputs")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--model", required=True, help="the model's name in tables and generator fields")
    parser.add_argument("--items", type=Path, required=True)
    parser.add_argument("--suites", nargs="+", required=True, choices=sorted(SUITE_WRITERS))
    parser.add_argument("--generation-json", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    from evals.backends import make_backend

    items = read_jsonl(args.items, schema="item")
    backend = make_backend(args.model_dir, {**json.loads(args.generation_json), "seed": args.seed})
    for suite in args.suites:
        suite_items = [it for it in items if it["suite"] == suite]
        if not suite_items:
            raise InputError(f"{args.items}: no items for suite {suite!r}")
        write, filename, schema = SUITE_WRITERS[suite]
        rows = write(backend, suite_items, args.model)
        write_json(args.out_dir / filename, rows, schema=schema)
        log.info("%s/%s: %d answers", args.model, suite, len(rows))


if __name__ == "__main__":
    run(main)
