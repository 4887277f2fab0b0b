"""Generation backends behind one call, ``generate(conversations) -> answers``: vLLM on GPU configs,
transformers (batched, left padding) otherwise. vLLM is imported only when a config selects it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pipeline.logs import get_logger

log = get_logger("evals.backends")


class Backend(Protocol):
    def generate(self, conversations: list[list[dict]]) -> list[str]: ...


class TransformersBackend:
    """Batched generation with transformers; batches sorted by prompt length to limit padding."""

    def __init__(self, model_dir: str | Path, *, max_new_tokens: int, batch_size: int, temperature: float,
                 top_p: float = 1.0, seed: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(self.device).eval()
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.temperature, self.top_p, self.seed = temperature, top_p, seed

    def generate(self, conversations: list[list[dict]]) -> list[str]:
        from tqdm import tqdm

        self.torch.manual_seed(self.seed)
        prompts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                   for c in conversations]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        answers: list[str] = [""] * len(prompts)
        sampling = ({"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
                    if self.temperature > 0 else {"do_sample": False})
        for start in tqdm(range(0, len(order), self.batch_size), desc="generate", unit="batch"):
            batch = order[start:start + self.batch_size]
            encoded = self.tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
            with self.torch.no_grad():
                out = self.model.generate(**encoded, max_new_tokens=self.max_new_tokens,
                                          pad_token_id=self.tokenizer.pad_token_id,
                                          eos_token_id=self.tokenizer.eos_token_id, **sampling)
            new_tokens = out[:, encoded["input_ids"].shape[1]:]
            for i, text in zip(batch, self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                answers[i] = text.strip()
        return answers


class VLLMBackend:
    """vLLM offline generation (GPU configs); the chat template comes from the checkpoint's tokenizer."""

    def __init__(self, model_dir: str | Path, *, max_new_tokens: int, batch_size: int, temperature: float,
                 top_p: float = 1.0, seed: int = 0, gpu_memory_utilization: float = 0.85):
        from vllm import LLM, SamplingParams

        self.llm = LLM(model=str(model_dir), seed=seed, gpu_memory_utilization=gpu_memory_utilization)
        self.sampling = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)

    def generate(self, conversations: list[list[dict]]) -> list[str]:
        outputs = self.llm.chat(conversations, self.sampling, use_tqdm=True)
        return [o.outputs[0].text.strip() for o in outputs]


BACKENDS = {"transformers": TransformersBackend, "vllm": VLLMBackend}


def make_backend(model_dir: str | Path, generation: dict) -> Backend:
    settings = dict(generation)
    name = settings.pop("backend")
    if name not in BACKENDS:
        raise ValueError(f"config key generation.backend: {name!r} is not one of {sorted(BACKENDS)}")
    return BACKENDS[name](model_dir, **settings)
