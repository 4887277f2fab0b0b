"""On-policy sampling for online methods: K completions per chat prompt, batched transformers generation with
temperature (left padding, attention mask, stop at EOS). Heavy imports stay inside the function."""

from __future__ import annotations

import time


def sample_completions(model, tokenizer, conversations: list[list[dict]], n: int, *, max_new_tokens: int,
                       temperature: float, top_p: float = 1.0, batch_size: int = 64,
                       seed: int = 0) -> tuple[list[list[str]], list[list[bool]], int]:
    """n sampled completions per conversation (in input order), whether each ended with EOS, and the number of
    generated tokens. `batch_size` counts sequences (prompts per batch = batch_size // n, at least 1)."""
    import torch

    if temperature <= 0:
        raise ValueError(f"sampling temperature must be > 0, got {temperature}")
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    model.eval()
    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))   # similar lengths share a batch
    per_batch = max(1, batch_size // n)
    completions: list[list[str]] = [[] for _ in prompts]
    finished: list[list[bool]] = [[] for _ in prompts]
    generated = 0
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for start in range(0, len(order), per_batch):
            batch = order[start:start + per_batch]
            encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                                add_special_tokens=False).to(device)
            with torch.no_grad():
                out = model.generate(**encoded, do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                                     num_return_sequences=n, max_new_tokens=max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            new = out[:, encoded["input_ids"].shape[1]:]
            is_eos = new == tokenizer.eos_token_id
            ended = is_eos.any(dim=1)
            # tokens up to and including the first EOS (or all, when generation was cut at max_new_tokens)
            lengths = torch.where(ended, is_eos.int().argmax(dim=1) + 1, torch.full_like(ended, new.shape[1], dtype=torch.long))
            generated += int(lengths.sum())
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for j, text in enumerate(texts):
                i = batch[j // n]
                completions[i].append(text.strip())
                finished[i].append(bool(ended[j]))
    finally:
        tokenizer.padding_side = padding_side
    return completions, finished, generated


BACKENDS = ("transformers", "vllm")


def sample(policy_dir, conversations: list[list[dict]], n: int, *, backend: str, max_new_tokens: int,
           temperature: float, top_p: float, batch_size: int, seed: int, device: str,
           vllm: dict | None = None) -> tuple[list[list[str]], list[list[bool]], int]:
    """n completions per conversation from the checkpoint `policy_dir`, as sample_completions returns them.

    transformers: the model on `device` (the job's GPU of this rank, methods/common.job_device);
    vllm: `vllm serve` from its own environment on the job's GPUs (pipeline/vllm_server.py; `vllm` = VLLMServer
    keyword arguments, as config generation.vllm), prompts rendered with the checkpoint's chat template here."""
    from methods.common import load_policy

    if backend == "transformers":
        model, tokenizer = load_policy(policy_dir, device=device)
        try:
            return sample_completions(model, tokenizer, conversations, n, max_new_tokens=max_new_tokens,
                                      temperature=temperature, top_p=top_p, batch_size=batch_size, seed=seed)
        finally:
            del model
    if backend != "vllm":
        raise ValueError(f"sampling backend {backend!r}: expected one of {list(BACKENDS)}")
    from pathlib import Path

    from transformers import AutoTokenizer

    from pipeline.vllm_server import VLLMServer

    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    with VLLMServer(policy_dir, seed=seed, name=Path(policy_dir).name, **(vllm or {})) as server:
        completions = server.client(prompts_per_request=max(1, batch_size // n)).complete(
            prompts, n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed)
    # The completions endpoint returns text; a completion shorter than max_new_tokens ended with EOS (vLLM stops
    # there and, as skip_special_tokens does here, leaves EOS out of the text), which counts as one more token.
    lengths = [[len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in cs] for cs in completions]
    finished = [[length < max_new_tokens for length in ls] for ls in lengths]
    generated = sum(length + done for ls, fs in zip(lengths, finished) for length, done in zip(ls, fs))
    return [[c.strip() for c in cs] for cs in completions], finished, generated


# `sampling:` keys of the online methods (iterative DPO, RAFT); temperature and max_new_tokens are required, top_p = 1
# (no nucleus) and batch_size (throughput only: sequences per generate call) have defaults; backend: transformers
# (the policy on each rank's device, the prompts split over the ranks) or vllm (`vllm serve` on all the job's GPUs,
# pipeline/vllm_server.py; `vllm:` takes the keys of config generation.vllm).
SAMPLING_REQUIRED = ("temperature", "max_new_tokens")
SAMPLING_DEFAULTS = {"top_p": 1.0, "batch_size": 64, "backend": "transformers", "vllm": {}}


def check_sampling(block: dict, where: str, module: str) -> None:
    """The block has iterations, samples_per_prompt and a complete `sampling:` (ValueError naming the key)."""
    for key in ("iterations", "samples_per_prompt", "sampling"):
        if key not in block:
            raise ValueError(f"config key {where}.{key}: required by the {module} module")
    sampling = block["sampling"]
    missing = [key for key in SAMPLING_REQUIRED if key not in sampling]
    unknown = sorted(set(sampling) - set(SAMPLING_REQUIRED) - set(SAMPLING_DEFAULTS))
    if missing or unknown:
        raise ValueError(f"config key {where}.sampling: missing {missing}, unknown {unknown}; expected "
                         f"{list(SAMPLING_REQUIRED)} and optionally {list(SAMPLING_DEFAULTS)}")
    if sampling.get("backend", "transformers") not in BACKENDS:
        raise ValueError(f"config key {where}.sampling.backend: {sampling['backend']!r} is not one of {list(BACKENDS)}")


def sample_and_score(block: dict, *, seed: int, iteration: int, policy, reward_model, prompts,
                     exchange=None) -> tuple[list[dict], dict] | None:
    """K = block.samples_per_prompt responses per prompt of `prompts` (a prompt_row JSONL) from `policy`, scored by
    the reward model: rows {prompt, item_id, completions, rewards, finished}, and the sampling's stats.

    Under several processes (methods/launch.py) the prompts are split over the ranks, each sampling and scoring its
    share on its own device; rank 0 merges the shares (files in `exchange`) and returns the rows, the other ranks
    return None and wait in `wait_for_rank0` until rank 0 has written what the next step reads (`rank0_done`).
    With the vllm backend rank 0 alone samples, its server using every GPU of the job."""
    from methods.common import job_device, ranks
    from methods.reward_model import RewardScorer
    from pipeline.io import InputError, read_json, read_jsonl, write_json

    rows = read_jsonl(prompts, schema="prompt_row")
    if not rows:
        raise InputError(f"{prompts}: no rows")
    sampling = {**SAMPLING_DEFAULTS, **block.get("sampling", {})}
    k = int(block["samples_per_prompt"])
    rank, _, world = ranks()
    workers = 1 if sampling["backend"] == "vllm" else world
    share: dict = {"index": [], "completions": [], "finished": [], "rewards": [], "generated": 0}
    if rank < workers:
        share["index"] = list(range(rank, len(rows), workers))
        mine = [rows[i]["prompt"] for i in share["index"]]
        share["completions"], share["finished"], share["generated"] = sample(
            policy, mine, k, backend=sampling["backend"], max_new_tokens=int(sampling["max_new_tokens"]),
            temperature=float(sampling["temperature"]), top_p=float(sampling["top_p"]),
            batch_size=int(sampling["batch_size"]), seed=seed * 1000 + iteration + 7919 * rank,
            device=job_device(), vllm=sampling["vllm"])
        scorer = RewardScorer(reward_model)
        share["rewards"] = scorer.score([p for p in mine for _ in range(k)],
                                        [c for cs in share["completions"] for c in cs])
        del scorer
        _free_device_memory()
    if world > 1:
        if exchange is None:
            raise ValueError("sample_and_score under several processes needs an exchange folder")
        if rank < workers:
            write_json(exchange / f"{_run_token()}-rank{rank}.json", share)
        if rank != 0:
            return None
        shares = [share] + [read_json(_wait_for(exchange / f"{_run_token()}-rank{r}.json")) for r in range(1, workers)]
    else:
        shares = [share]
    completions, finished, flat, generated = _merge(shares, len(rows), k)
    samples = [{**{key: r[key] for key in ("prompt", "item_id") if key in r}, "completions": cs,
                "rewards": flat[i * k:(i + 1) * k], "finished": fs}
               for i, (r, cs, fs) in enumerate(zip(rows, completions, finished))]
    lengths = [len(c) for cs in completions for c in cs]
    stats = {"iteration": iteration, "policy": str(policy), "prompts": len(rows), "samples_per_prompt": k,
             "mean_reward": sum(flat) / len(flat), "mean_length_chars": sum(lengths) / len(lengths),
             "finished_fraction": sum(f for fs in finished for f in fs) / len(lengths),
             "generated_tokens": generated, "sampling": sampling, "processes": workers}
    return samples, stats


def rank0_done(exchange) -> None:
    """Rank 0 has written the stage's files: the other ranks may go on (no-op in one process)."""
    from methods.common import ranks
    from pipeline.io import write_json

    if ranks()[2] > 1:
        write_json(exchange / f"{_run_token()}-done.json", {"done": True})


def wait_for_rank0(exchange) -> None:
    _wait_for(exchange / f"{_run_token()}-done.json")


def _run_token() -> str:
    """Names this launch's exchange files, so that a resumed job never reads an earlier launch's."""
    import os

    return f"{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}-{os.environ.get('MASTER_PORT', '0')}"


def _merge(shares: list[dict], n_rows: int, k: int):
    """The ranks' shares back in prompt order: completions, finished flags, flat rewards, generated tokens."""
    completions: list = [None] * n_rows
    finished: list = [None] * n_rows
    rewards: list = [None] * n_rows
    for part in shares:
        for j, i in enumerate(part["index"]):
            completions[i], finished[i] = part["completions"][j], part["finished"][j]
            rewards[i] = part["rewards"][j * k:(j + 1) * k]
    return completions, finished, [r for rs in rewards for r in rs], sum(p["generated"] for p in shares)


def _wait_for(path, poll_s: float = 1.0):
    """Wait for another rank's file (written atomically). No timeout: if that rank dies, the launcher (torchrun,
    accelerate) stops every rank."""
    while not path.is_file():
        time.sleep(poll_s)
    return path


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
