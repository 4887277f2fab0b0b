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
