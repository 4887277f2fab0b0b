"""The Bradley-Terry reward model (TRL RewardTrainer) from the SFT checkpoint, or from the model named by the
block's ``init: {hub_id, revision?}`` (the RLHF Workflow report starts it from Meta-Llama-3-8B-Instruct, its
footnote 4), and a scorer that the online methods (iterative DPO, PPO, GRPO) share.

    python -m methods.reward_model --block-json '{...}' --seed 0 --sft results/micro/models/sft \
        --prefs results/micro/data/rm_prefs.jsonl --out-dir results/micro/models/reward_model
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from pipeline.io import InputError
from pipeline.logs import get_logger
from pipeline.cli import entry_point

log = get_logger("methods.reward_model")


def train_reward_model(block: dict, *, seed: int, sft: Path, prefs: Path, out_dir: Path) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, set_seed
    from trl import RewardConfig, RewardTrainer

    from methods.common import (device_plan, load_dataset_file, load_policy, save_checkpoint, train_resuming,
                                trainer_tokens_seen, trl_config)

    from pipeline.provenance import verify_checkpoint

    started = time.time()
    init = block.get("init")
    if init:   # a hub model (or a local folder) instead of our SFT checkpoint, with its own tokenizer
        from transformers import AutoTokenizer

        from pipeline.hub_data import resolve_repo

        source, local = resolve_repo(init["hub_id"], None, "reward_model.init.hub_id")   # the mirror, when one is set
        revision = None if local else init.get("revision")
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    else:
        source, revision = sft, None
        verify_checkpoint(sft)
        _, tokenizer = load_policy(sft)
    set_seed(seed)  # the score head is freshly initialised by from_pretrained: seed it, or every run differs
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, revision=revision,
                                                               dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    plan = device_plan(block, "reward_model")
    args = trl_config(RewardConfig, block["trainer"], plan=plan, out_dir=out_dir, seed=seed,
                      where="reward_model.trainer")
    trainer = RewardTrainer(model=model, args=args, train_dataset=load_dataset_file(prefs, "preference_row"),
                            processing_class=tokenizer)
    train_resuming(trainer)
    return save_checkpoint(trainer.model, tokenizer, out_dir, stage="reward_model", config_block=block,
                           parents={"policy": sft} if not init else {}, seed=seed, started=started,
                           tokens_seen=trainer_tokens_seen(trainer), plan=plan,
                           extra={"metrics": {"train_log": trainer.state.log_history},
                                  **({"init": dict(init)} if init else {})})


class RewardScorer:
    """Scalar Bradley-Terry rewards for (prompt messages, completion text) pairs, batched, no gradients."""

    def __init__(self, path: str | Path, batch_size: int = 64, device: str | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from methods.common import job_device

        self.torch = torch
        self.path = path
        self.device = device or job_device()   # each rank scores on its own device (LOCAL_RANK)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "right"
        # inference only: bf16 halves the memory of a reward model on every rank where the GPU supports it
        dtype = (torch.bfloat16 if self.device.startswith("cuda") and torch.cuda.is_bf16_supported()
                 else torch.float32)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self.batch_size = batch_size

    def score(self, prompts: list[list[dict]], completions: list[str]) -> list[float]:
        texts = [self.tokenizer.apply_chat_template(p + [{"role": "assistant", "content": c}], tokenize=False)
                 for p, c in zip(prompts, completions)]
        # batches of similar length (about half the padding of the given order), rewards back in the given order
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rewards: list[float] = [math.nan] * len(texts)
        for start in range(0, len(texts), self.batch_size):
            chunk = order[start:start + self.batch_size]
            batch = self.tokenizer([texts[i] for i in chunk], return_tensors="pt", padding=True,
                                   add_special_tokens=False).to(self.device)
            with self.torch.no_grad():
                for i, reward in zip(chunk, self.model(**batch).logits[:, 0].float().tolist()):
                    rewards[i] = reward
        bad = next((i for i, r in enumerate(rewards) if not math.isfinite(r)), None)
        if bad is not None:  # a NaN would silently drop or keep an iterative pair, or poison PPO's advantages
            raise InputError(f"reward model {self.path}: reward {rewards[bad]} for completion {bad} "
                             f"({completions[bad][:40]!r}); expected a finite number (corrupt or diverged model?)")
        return rewards


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block-json", required=True, help="the config's `reward_model` block as JSON")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--sft", type=Path, required=True)
    parser.add_argument("--prefs", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    record = train_reward_model(json.loads(args.block_json), seed=args.seed, sft=args.sft, prefs=args.prefs,
                                out_dir=args.out_dir)
    log.info("saved %s: %.1f s", args.out_dir, record["wall_time_s"])


if __name__ == "__main__":
    entry_point(main)
