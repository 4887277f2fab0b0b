"""Generation backends behind one call, ``generate(conversations, **overrides) -> answers``: vLLM on GPU configs,
transformers (batched, left padding) otherwise. vLLM runs in its own environment behind its HTTP endpoint
(pipeline/vllm_server.py), started only when a config selects it.

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

    def samples(self, conversations: list[list[dict]], n: int, **overrides) -> list[list[str]]: ...

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

    def samples(self, conversations: list[list[dict]], n: int, **overrides) -> list[list[str]]:
        """n answers per conversation (in order): each conversation repeated n times in one call, so with
        temperature > 0 every copy is its own draw."""
        flat = self.generate([c for c in conversations for _ in range(n)], **overrides)
        return [flat[i * n:(i + 1) * n] for i in range(len(conversations))]

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
    """vLLM from its own environment behind its OpenAI-compatible endpoint (pipeline/vllm_server.py; config
    `generation.vllm`). Prompts are the checkpoint's chat template applied here, as the transformers backend does,
    sent to /v1/completions `batch_size` at a time; lm-eval reaches the same server as its `local-completions` model."""

    def __init__(self, model_dir: str | Path, *, max_new_tokens: int, batch_size: int, temperature: float,
                 vllm: dict | None = None, top_p: float = 1.0, seed: int = 0):
        from transformers import AutoTokenizer

        from pipeline.vllm_server import VLLMServer

        self.model_dir, self.batch_size, self.seed = str(model_dir), batch_size, seed
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        self.server = VLLMServer(model_dir, seed=seed, name=Path(model_dir).name, **(vllm or {})).start()

    def generate(self, conversations: list[list[dict]], **overrides) -> list[str]:
        return [texts[0] for texts in self.samples(conversations, 1, **overrides)]

    def samples(self, conversations: list[list[dict]], n: int, **overrides) -> list[list[str]]:
        """n answers per conversation from one request each (vLLM's `n`: distinct draws under one request seed)."""
        check_overrides(overrides)
        s = {**self.settings, **overrides}
        prompts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                   for c in conversations]
        texts = self.server.client(self.batch_size).complete(
            prompts, n=n, temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_new_tokens"],
            seed=self.seed)
        return [[t.strip() for t in ts] for ts in texts]

    def run_academic(self, tasks: list[dict], out_dir: str | Path, *, model_name: str, batch_size: int,
                     limit: int | float | None, random_seed: int, confirm_run_unsafe_code: bool = False,
                     **harness: Any) -> dict:
        """lm-eval's `local-completions` model against the running server (its tokenizer from the checkpoint)."""
        from lm_eval.models.openai_completions import LocalCompletionsAPI

        from evals.protocols.academic_protocol import run_academic_with_lm

        lm = LocalCompletionsAPI(base_url=f"{self.server.base_url}/completions", model=self.server.name,
                                 tokenizer=self.model_dir, tokenizer_backend="huggingface", batch_size=batch_size,
                                 num_concurrent=self.server.concurrency, seed=random_seed,
                                 timeout=self.server.request_timeout_s, max_length=context_length(self.model_dir))
        return run_academic_with_lm(lm, tasks, out_dir, model_name=model_name, limit=limit, random_seed=random_seed,
                                    confirm_run_unsafe_code=confirm_run_unsafe_code, **harness)


def context_length(model_dir: str | Path) -> int:
    """The checkpoint's context window (lm-eval's API models otherwise assume 2048 tokens)."""
    import json

    return int(json.loads((Path(model_dir) / "config.json").read_text())["max_position_embeddings"])


BACKENDS = {"transformers": TransformersBackend, "vllm": VLLMBackend}


def make_backend(model_dir: str | Path, generation: dict) -> Backend:
    """The configured backend for a checkpoint; for an inference-time method's folder (best-of-n), that backend on
    the policy the rule names, wrapped in the rule's class. The wrapper is named by import path in the folder (as
    config classes are in the method registry), so evals/ imports no method module: the checkpoint says what runs."""
    from pipeline.provenance import INFERENCE_RULE

    rule_path = Path(model_dir) / INFERENCE_RULE
    if rule_path.is_file():
        import importlib

        from pipeline.io import read_json

        rule = read_json(rule_path)
        module, _, name = rule["wrapper"].partition(":")
        wrapper = getattr(importlib.import_module(module), name)
        return wrapper(make_backend(rule["policy"], generation), rule)
    settings = dict(generation)
    name = settings.pop("backend")
    if name not in BACKENDS:
        raise ValueError(f"config key generation.backend: {name!r} is not one of {sorted(BACKENDS)}")
    return BACKENDS[name](model_dir, **settings)
