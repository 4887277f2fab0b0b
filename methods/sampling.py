"""On-policy sampling for online methods: K completions per chat prompt, batched transformers generation with
temperature (left padding, attention mask, stop at EOS). Heavy imports stay inside the function."""

from __future__ import annotations


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


# `sampling:` keys of the online methods (iterative DPO, RAFT); temperature and max_new_tokens are required, top_p = 1
# (no nucleus) and batch_size (throughput only: sequences per generate call) have defaults.
SAMPLING_REQUIRED = ("temperature", "max_new_tokens")
SAMPLING_DEFAULTS = {"top_p": 1.0, "batch_size": 64}


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


def sample_and_score(block: dict, *, seed: int, iteration: int, policy, reward_model, prompts) -> tuple[list[dict], dict]:
    """K = block.samples_per_prompt responses per prompt of `prompts` (a prompt_row JSONL) from `policy`, scored by
    the reward model: rows {prompt, item_id, completions, rewards, finished}, and the sampling's stats."""
    from methods.common import load_policy
    from methods.reward_model import RewardScorer
    from pipeline.io import InputError, read_jsonl

    rows = read_jsonl(prompts, schema="prompt_row")
    if not rows:
        raise InputError(f"{prompts}: no rows")
    sampling = {**SAMPLING_DEFAULTS, **block.get("sampling", {})}
    k = int(block["samples_per_prompt"])
    model, tokenizer = load_policy(policy)
    completions, finished, generated = sample_completions(
        model, tokenizer, [r["prompt"] for r in rows], k, max_new_tokens=int(sampling["max_new_tokens"]),
        temperature=float(sampling["temperature"]), top_p=float(sampling["top_p"]),
        batch_size=int(sampling["batch_size"]), seed=seed * 1000 + iteration)
    del model
    scorer = RewardScorer(reward_model)
    flat = scorer.score([r["prompt"] for r in rows for _ in range(k)], [c for cs in completions for c in cs])
    samples = [{**{key: r[key] for key in ("prompt", "item_id") if key in r}, "completions": cs,
                "rewards": flat[i * k:(i + 1) * k], "finished": fs}
               for i, (r, cs, fs) in enumerate(zip(rows, completions, finished))]
    lengths = [len(c) for cs in completions for c in cs]
    stats = {"iteration": iteration, "policy": str(policy), "prompts": len(rows), "samples_per_prompt": k,
             "mean_reward": sum(flat) / len(flat), "mean_length_chars": sum(lengths) / len(lengths),
             "finished_fraction": sum(f for fs in finished for f in fs) / len(lengths),
             "generated_tokens": generated, "sampling": sampling}
    return samples, stats
