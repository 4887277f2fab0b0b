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
