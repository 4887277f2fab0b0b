"""Base stage: the model every method descends from.

Micro world: train the BPE tokenizer on the world's text, create a small Llama from `base.architecture`, and
pretrain it briefly (TRL SFTTrainer on plain text). Real configs: `base.hub_id` is loaded (from the hub mirror when
one is given: ALIGNMENT_BENCH_HUB_MIRROR, which the workflow sets from `data.mirror`) and saved as is; a base tokenizer without a chat template
(Meta-Llama-3-8B's) gets the one `base.chat_template` names (methods/chat_templates/).

    python -m methods.base_model --config-json '{...base block...}' --seed 0 \
        --pretrain-data results/micro/data/pretrain.jsonl --sft-data results/micro/data/sft.jsonl --out-dir DIR
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pipeline.io import read_jsonl
from pipeline.logs import get_logger
from pipeline.cli import entry_point

log = get_logger("methods.base_model")


def tokenizer_corpus(pretrain_path: Path, sft_path: Path) -> list[str]:
    texts = [row["text"] for row in read_jsonl(pretrain_path, schema="text_row")]
    texts += [m["content"] for row in read_jsonl(sft_path, schema="sft_row") for m in row["messages"]]
    return texts


def build_micro_base(block: dict, seed: int, pretrain_path: Path, sft_path: Path, out_dir: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    from methods.common import (device_plan, load_dataset_file, save_checkpoint, train_resuming,
                                trainer_tokens_seen, trl_config)
    from world.tokenizer import train_tokenizer

    started = time.time()
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(tokenizer_corpus(pretrain_path, sft_path), block["tokenizer"]["vocab_size"])
    model_config = LlamaConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=True, **block["architecture"],
    )
    model = LlamaForCausalLM(model_config)
    log.info("created Llama with %.2fM parameters, vocabulary %d", model.num_parameters() / 1e6, len(tokenizer))
    pretrain = block["pretrain"]
    plan = device_plan(pretrain, "base.pretrain")
    args = trl_config(SFTConfig, {"dataset_text_field": "text", **pretrain["trainer"]}, plan=plan,
                      out_dir=out_dir, seed=seed, where="base.pretrain.trainer")
    trainer = SFTTrainer(model=model, args=args, train_dataset=load_dataset_file(pretrain_path, "text_row"),
                         processing_class=tokenizer)
    train_resuming(trainer)
    save_checkpoint(trainer.model, tokenizer, out_dir, stage="base", config_block=block, parents={}, seed=seed,
                    started=started, tokens_seen=trainer_tokens_seen(trainer), plan=plan)


# Chat templates a base tokenizer can be given (`base.chat_template`): the file, and the special tokens the chat
# model uses as its tokenizer declares them (Meta-Llama-3-8B-Instruct: EOS = end of turn; Llama-3 has no pad token,
# so the base's end-of-text token pads).
CHAT_TEMPLATES = {"llama3": {"file": "llama3.jinja", "eos_token": "<|eot_id|>", "pad_token": "<|end_of_text|>"}}
CHAT_TEMPLATES_DIR = Path(__file__).resolve().parent / "chat_templates"


def apply_chat_template(model, tokenizer, name: str, where: str = "base.chat_template") -> None:
    """Give a tokenizer without a chat template the named one, its end-of-turn token as EOS (generation stops
    there) and a pad token where it has none."""
    from pipeline.io import InputError

    if tokenizer.chat_template:
        raise InputError(f"config key {where}: the tokenizer already has a chat template; remove the key to keep it")
    spec = CHAT_TEMPLATES[name]
    missing = [t for t in (spec["eos_token"], spec["pad_token"]) if tokenizer.convert_tokens_to_ids(t) in
               (None, tokenizer.unk_token_id)]
    if missing:
        raise InputError(f"config key {where}: {name!r} needs the special tokens {missing}, not in the tokenizer")
    tokenizer.chat_template = (CHAT_TEMPLATES_DIR / spec["file"]).read_text(encoding="utf-8")
    eos_before = tokenizer.eos_token_id
    tokenizer.eos_token = spec["eos_token"]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = spec["pad_token"]
    model.config.pad_token_id, model.config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = sorted({tokenizer.eos_token_id, eos_before} - {None})


def save_hub_base(block: dict, seed: int, out_dir: Path, mirror: str | None = None) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from methods.common import ranks, save_checkpoint
    from pipeline.hub_data import resolve_repo

    if ranks()[0] != 0:
        return   # nothing to train: rank 0 loads and saves it; the other launched processes need no copy in memory
    started = time.time()
    source, local = resolve_repo(block["hub_id"], mirror, "base.hub_id")
    revision = None if local else block.get("revision")
    model = AutoModelForCausalLM.from_pretrained(source, revision=revision)
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    if block.get("chat_template"):
        apply_chat_template(model, tokenizer, block["chat_template"])
    plan = {"device": "cpu", "world_size": 1, "effective_batch_size": 1, "per_device_train_batch_size": 1,
            "gradient_accumulation_steps": 1, "bf16": False}
    save_checkpoint(model, tokenizer, out_dir, stage="base", config_block=block, parents={}, seed=seed,
                    started=started, tokens_seen=0, plan=plan, extra={"hub_id": block["hub_id"]})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-json", required=True, help="the config's `base` block as JSON")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--pretrain-data", type=Path)
    parser.add_argument("--sft-data", type=Path)
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    block = json.loads(args.config_json)
    if "hub_id" in block:
        save_hub_base(block, args.seed, args.out_dir)
    else:
        build_micro_base(block, args.seed, args.pretrain_data, args.sft_data, args.out_dir)


if __name__ == "__main__":
    entry_point(main)
