"""Generation backends behind one call, ``generate(conversations, **overrides) -> answers``: vLLM on GPU configs,
transformers (batched, left padding) otherwise. vLLM is imported only when a config selects it.

``overrides`` are per-call sampling settings (``max_new_tokens``, ``temperature``, ``top_p``) over the backend's
own (a suite's generation settings). ``run_academic(tasks, out_dir, ...)`` evaluates the same model through
lm-eval (evals/protocols/academic_protocol.py): the transformers backend hands lm-eval the model it already loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from pipeline.logs import get_logger

log = get_logger("evals.backends")


SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p")


class Backend(Protocol):
    def generate(self, conversations: list[list[dict]], **overrides) -> list[str]: ...

    def run_academic(self, tasks: list[dict], out_dir: str | Path, *, model_name: str, batch_size: int,
                     limit: int | float | None, random_seed: int, confirm_run_unsafe_code: bool = False,
                     **harness: Any) -> dict: ...


def check_overrides(overrides: dict) -> None:
    unknown = set(overrides) - set(SAMPLING_KEYS)
    if unknown:
        raise ValueError(f"generation overrides {sorted(unknown)} are not among {SAMPLING_KEYS}")


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

    def generate(self, conversations: list[list[dict]], **overrides) -> list[str]:
        from tqdm import tqdm

        check_overrides(overrides)
        max_new_tokens = overrides.get("max_new_tokens", self.max_new_tokens)
        temperature = overrides.get("temperature", self.temperature)
        top_p = overrides.get("top_p", self.top_p)
        self.torch.manual_seed(self.seed)
        prompts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                   for c in conversations]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        answers: list[str] = [""] * len(prompts)
        sampling = ({"do_sample": True, "temperature": temperature, "top_p": top_p}
                    if temperature > 0 else {"do_sample": False})
        for start in tqdm(range(0, len(order), self.batch_size), desc="generate", unit="batch"):
            batch = order[start:start + self.batch_size]
            encoded = self.tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
            with self.torch.no_grad():
                out = self.model.generate(**encoded, max_new_tokens=max_new_tokens,
                                          pad_token_id=self.tokenizer.pad_token_id,
                                          eos_token_id=self.tokenizer.eos_token_id, **sampling)
            new_tokens = out[:, encoded["input_ids"].shape[1]:]
            for i, text in zip(batch, self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                answers[i] = text.strip()
        return answers

    def run_academic(self, tasks: list[dict], out_dir: str | Path, *, model_name: str, batch_size: int,
                     limit: int | float | None, random_seed: int, confirm_run_unsafe_code: bool = False,
                     **harness: Any) -> dict:
        """lm-eval on the model already in memory (one load serves generation and the academic suite);
        ``harness``: apply_chat_template, fewshot_as_multiturn (the suite's config keys)."""
        from evals.protocols.academic_protocol import run_academic_with_model

        return run_academic_with_model(self.model, self.tokenizer, tasks, out_dir, batch_size=batch_size,
                                       model_name=model_name, limit=limit, random_seed=random_seed,
                                       confirm_run_unsafe_code=confirm_run_unsafe_code, **harness)


class VLLMBackend:
    """vLLM offline generation (GPU configs); the chat template comes from the checkpoint's tokenizer."""

    def __init__(self, model_dir: str | Path, *, max_new_tokens: int, batch_size: int, temperature: float,
                 top_p: float = 1.0, seed: int = 0, gpu_memory_utilization: float = 0.85):
        from vllm import LLM, SamplingParams

        self.model_dir = str(model_dir)
        self.gpu_memory_utilization = gpu_memory_utilization
        self.llm = LLM(model=self.model_dir, seed=seed, gpu_memory_utilization=gpu_memory_utilization)
        self.settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        self.seed = seed
        self._sampling_params = SamplingParams

    def generate(self, conversations: list[list[dict]], **overrides) -> list[str]:
        check_overrides(overrides)
        s = {**self.settings, **overrides}
        sampling = self._sampling_params(max_tokens=s["max_new_tokens"], temperature=s["temperature"],
                                         top_p=s["top_p"], seed=self.seed)
        outputs = self.llm.chat(conversations, sampling, use_tqdm=True)
        return [o.outputs[0].text.strip() for o in outputs]

    def run_academic(self, tasks: list[dict], out_dir: str | Path, *, model_name: str, batch_size: int,
                     limit: int | float | None, random_seed: int, confirm_run_unsafe_code: bool = False,
                     **harness: Any) -> dict:
        """lm-eval's own vLLM model: it builds its engine from the folder, so the generation engine is released
        first (lm-eval's VLLM wrapper takes no engine instance)."""
        import gc

        from evals.protocols.academic_protocol import run_academic_with_lm
        from lm_eval.models.vllm_causallms import VLLM

        del self.llm
        gc.collect()
        lm = VLLM(pretrained=self.model_dir, batch_size=batch_size, seed=random_seed,
                  gpu_memory_utilization=self.gpu_memory_utilization)
        return run_academic_with_lm(lm, tasks, out_dir, model_name=model_name, limit=limit, random_seed=random_seed,
                                    confirm_run_unsafe_code=confirm_run_unsafe_code, **harness)


BACKENDS = {"transformers": TransformersBackend, "vllm": VLLMBackend}


def make_backend(model_dir: str | Path, generation: dict) -> Backend:
    settings = dict(generation)
    name = settings.pop("backend")
    if name not in BACKENDS:
        raise ValueError(f"config key generation.backend: {name!r} is not one of {sorted(BACKENDS)}")
    return BACKENDS[name](model_dir, **settings)
