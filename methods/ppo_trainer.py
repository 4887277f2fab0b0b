# Own PPO: TRL 1.16 removed PPOTrainer, and no maintained PyPI replacement runs with our torch/transformers/trl pins.
"""PPO for causal LMs (RLHF), in the shape of TRL's old PPOTrainer (v0.11-v0.19).

Follows the "N implementation details of RLHF with PPO" conventions:

* rollouts are sampled from the policy with temperature, left-padded prompts, stopping at EOS;
  everything after the first EOS is masked out;
* log-probs are taken from ``logits / temperature`` under the policy and the frozen reference;
* per-token reward ``-kl_coef * (logp - logp_ref)``, plus the sequence-level scalar reward on the
  last generated token (the EOS, or the last token when generation was truncated);
* values from a value head, GAE advantages (whitened over valid tokens), returns = adv + values;
* ``ppo_epochs`` passes over shuffled mini-batches with the clipped surrogate and clipped value
  loss, AdamW, gradient clipping, gradient accumulation; dropout disabled.

Value model: by default (``shared_value_trunk=False``) the value model is a *separate copy of the
policy's trunk* (``policy.base_model``) with a linear head on its last hidden state, as in TRL >= 0.11
and the N-details reference; it is trained with the policy by one optimizer but shares no weights.
With ``shared_value_trunk=True`` the head sits on the policy's own last hidden state (TRL < 0.11's
``AutoModelForCausalLMWithValueHead``): half the memory, but the value loss also moves the policy.
``save_model`` writes the policy only.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "PPOConfig",
    "PPOTrainer",
    "ValueHead",
    "PolicyAndValue",
    "compute_gae",
    "masked_mean",
    "masked_var",
    "masked_whiten",
]

RewardFn = Callable[[list[str], list[str]], Sequence[float]]


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
@dataclass
class PPOConfig:
    learning_rate: float = field(default=1e-6, metadata={"help": "AdamW learning rate (policy and value head)."})
    adam_eps: float = field(default=1e-5, metadata={"help": "AdamW epsilon (N-details use 1e-5)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    per_device_train_batch_size: int = field(
        default=16, metadata={"help": "Rollout batch: prompts sampled and completed per PPO iteration, per device."}
    )
    mini_batch_size: int = field(
        default=4, metadata={"help": "Rollouts per optimizer step; must divide per_device_train_batch_size."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches per mini-batch (micro-batch = mini_batch_size / this)."}
    )
    ppo_epochs: int = field(default=4, metadata={"help": "Passes over each rollout batch."})
    num_rollout_steps: int = field(default=100, metadata={"help": "Total PPO iterations (rollout + update)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Maximum completion length in tokens."})
    temperature: float = field(
        default=0.7, metadata={"help": "Sampling temperature; log-probs are taken from logits / temperature."}
    )
    kl_coef: float = field(default=0.05, metadata={"help": "Per-token KL penalty coefficient (k1 estimator)."})
    gamma: float = field(default=1.0, metadata={"help": "Discount factor for GAE, in [0, 1]."})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda, in [0, 1]."})
    cliprange: float = field(default=0.2, metadata={"help": "PPO ratio clip range (epsilon)."})
    cliprange_value: float = field(default=0.2, metadata={"help": "Value clip range around the rollout values."})
    vf_coef: float = field(default=0.1, metadata={"help": "Value loss coefficient."})
    whiten_rewards: bool = field(
        default=False, metadata={"help": "Whiten the per-token rewards (scale only, no mean shift) before GAE."}
    )
    missing_eos_penalty: Optional[float] = field(
        default=None,
        metadata={"help": "If set, subtracted from the scalar reward of completions that did not emit EOS."},
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (<= 0 disables)."})
    shared_value_trunk: bool = field(
        default=False,
        metadata={
            "help": "False: value model is a separate copy of the policy trunk + linear head. "
            "True: linear head on the policy's own last hidden state."
        },
    )
    seed: int = field(default=0, metadata={"help": "Random seed (prompt order, sampling, init)."})
    logging_steps: int = field(default=1, metadata={"help": "Write a log line to ppo_log.jsonl every N iterations."})
    save_steps: int = field(
        default=0,
        metadata={"help": "Save a resumable checkpoint (output_dir/checkpoint-<step>: model, optimizer, RNG, prompt "
                  "order, counters) every N iterations, keeping the newest; 0 never saves."},
    )
    output_dir: str = field(default="ppo_output", metadata={"help": "Where ppo_log.jsonl and saved models go."})
    use_cpu: bool = field(default=False, metadata={"help": "Force CPU even when an accelerator is present."})
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision through accelerate."})
    disable_tqdm: bool = field(default=False, metadata={"help": "Hide the progress bar."})

    def __post_init__(self) -> None:
        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"PPOConfig.{name} must be a positive integer, got {v!r}")

        for name in (
            "per_device_train_batch_size",
            "mini_batch_size",
            "gradient_accumulation_steps",
            "ppo_epochs",
            "num_rollout_steps",
            "max_new_tokens",
            "logging_steps",
        ):
            positive_int(name)
        if not isinstance(self.save_steps, int) or self.save_steps < 0:
            raise ValueError(f"PPOConfig.save_steps must be an integer >= 0, got {self.save_steps!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"PPOConfig.learning_rate must be a finite positive number, got {self.learning_rate!r}")
        if not self.temperature > 0:
            raise ValueError(f"PPOConfig.temperature must be > 0, got {self.temperature!r}")
        for name in ("gamma", "lam"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"PPOConfig.{name} must be in [0, 1], got {v!r}")
        for name in ("cliprange", "cliprange_value"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"PPOConfig.{name} must be > 0, got {v!r}")
        for name in ("kl_coef", "vf_coef", "adam_eps", "weight_decay"):
            v = getattr(self, name)
            if v < 0:
                raise ValueError(f"PPOConfig.{name} must be >= 0, got {v!r}")
        if self.missing_eos_penalty is not None and self.missing_eos_penalty < 0:
            raise ValueError(
                f"PPOConfig.missing_eos_penalty must be >= 0 (it is subtracted), got {self.missing_eos_penalty!r}"
            )
        if self.mini_batch_size > self.per_device_train_batch_size:
            raise ValueError(
                f"PPOConfig.mini_batch_size ({self.mini_batch_size}) cannot exceed "
                f"per_device_train_batch_size ({self.per_device_train_batch_size})"
            )
        if self.per_device_train_batch_size % self.mini_batch_size != 0:
            raise ValueError(
                f"PPOConfig.per_device_train_batch_size ({self.per_device_train_batch_size}) must be divisible "
                f"by mini_batch_size ({self.mini_batch_size})"
            )
        if self.mini_batch_size % self.gradient_accumulation_steps != 0:
            raise ValueError(
                f"PPOConfig.mini_batch_size ({self.mini_batch_size}) must be divisible by "
                f"gradient_accumulation_steps ({self.gradient_accumulation_steps})"
            )

    @property
    def micro_batch_size(self) -> int:
        return self.mini_batch_size // self.gradient_accumulation_steps

    @property
    def num_mini_batches(self) -> int:
        return self.per_device_train_batch_size // self.mini_batch_size

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Masked statistics and GAE
# --------------------------------------------------------------------------------------------
def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the positions where mask is 1; with shift_mean=False the mean is kept."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    gamma: float,
    lam: float,
    mask: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over the token axis (dim 1).

    rewards, values: (batch, T). mask: (batch, T), 1 on valid (generated) tokens, which must be a
    prefix of each row; positions past it are treated as terminal (value 0, reward 0).
    Returns (advantages, returns) with returns = advantages + values; both 0 where mask is 0.
    """
    if mask is None:
        mask = torch.ones_like(rewards)
    mask = mask.to(rewards.dtype)
    rewards = rewards * mask
    values = values * mask
    T = rewards.shape[1]
    lastgaelam = torch.zeros_like(rewards[:, 0])
    advantages_reversed = []
    for t in reversed(range(T)):
        nextvalues = values[:, t + 1] if t < T - 1 else torch.zeros_like(values[:, 0])
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1) * mask
    returns = (advantages + values) * mask
    return advantages, returns


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
class ValueHead(nn.Module):
    """Linear map from the last hidden state to a scalar value per token (zero-initialised)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden_states.to(self.summary.weight.dtype)).squeeze(-1)


class PolicyAndValue(nn.Module):
    """Holds the policy, the value head and (unless shared) the value trunk, so one optimizer and
    one ``accelerator.prepare`` cover all trainable parameters. forward returns (logits, values)."""

    def __init__(self, policy: PreTrainedModel, shared_value_trunk: bool = False):
        super().__init__()
        self.policy = policy
        self.shared_value_trunk = shared_value_trunk
        hidden_size = policy.config.get_text_config().hidden_size
        self.value_trunk = None if shared_value_trunk else copy.deepcopy(policy.base_model)
        self.value_head = ValueHead(hidden_size)
        # Keep the head on the policy's device; dtype fp32 (autocast handles bf16 under accelerate).
        self.value_head.to(next(policy.parameters()).device)

    def forward(self, input_ids, attention_mask, position_ids):
        if self.shared_value_trunk:
            out = self.policy(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                output_hidden_states=True,
                use_cache=False,
            )
            hidden = out.hidden_states[-1]
        else:
            out = self.policy(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
            )
            hidden = self.value_trunk(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
            ).last_hidden_state
        return out.logits, self.value_head(hidden)


def _reset_accelerate_state() -> None:
    """accelerate keeps one AcceleratorState per process and refuses a second Accelerator with other
    precision/device settings (e.g. after a TRL trainer ran in the same process). Like transformers'
    TrainingArguments, reset it; keep the distributed PartialState when several processes run."""
    from accelerate.state import AcceleratorState, PartialState

    partial = PartialState._shared_state
    multi_process = bool(partial) and partial.get("num_processes", 1) > 1
    AcceleratorState._reset_state(reset_partial_state=not multi_process)


def _disable_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    cfg = getattr(model, "config", None)
    if cfg is not None:
        for name in ("attention_dropout", "hidden_dropout", "dropout", "attn_pdrop", "resid_pdrop", "embd_pdrop"):
            if isinstance(getattr(cfg, name, None), float):
                setattr(cfg, name, 0.0)


def _selective_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    return torch.gather(logits, -1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


# --------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------
class PPOTrainer:
    """PPO with a KL penalty to a frozen reference policy.

    Args:
        config: PPOConfig.
        policy: a transformers causal LM, trained in place.
        ref_policy: a transformers causal LM, frozen (typically the SFT model the policy starts from).
        tokenizer: has a pad token and an EOS token; prompts are left-padded.
        reward_fn: reward_fn(prompts, completions) -> one float per completion (sequence-level).
        train_prompts: chat-formatted prompt strings (rendered with add_generation_prompt=True).
    """

    LOG_FILE = "ppo_log.jsonl"

    def __init__(
        self,
        config: PPOConfig,
        policy: PreTrainedModel,
        ref_policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        reward_fn: RewardFn,
        train_prompts: Sequence[str],
    ):
        if not isinstance(config, PPOConfig):
            raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
        if policy is ref_policy:
            raise ValueError("ref_policy must be a separate model from policy (e.g. a copy of the SFT model)")
        if tokenizer.pad_token_id is None:
            raise ValueError("tokenizer needs a pad token (set tokenizer.pad_token)")
        if tokenizer.eos_token_id is None:
            raise ValueError("tokenizer needs an EOS token")
        if not callable(reward_fn):
            raise TypeError("reward_fn must be callable: reward_fn(prompts, completions) -> list[float]")
        train_prompts = list(train_prompts)
        if not train_prompts or not all(isinstance(p, str) for p in train_prompts):
            raise ValueError("train_prompts must be a non-empty list of strings")

        self.config = config
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        self.train_prompts = train_prompts
        self.history: list[dict] = []
        self.tokens_seen = 0
        self.global_step = 0  # PPO iterations done
        self.optimizer_steps = 0

        _reset_accelerate_state()
        self.accelerator = Accelerator(
            cpu=config.use_cpu,
            mixed_precision="bf16" if config.bf16 else "no",
            gradient_accumulation_steps=config.gradient_accumulation_steps,
        )
        set_seed(config.seed + self.accelerator.process_index)   # ranks sample different completions
        self._rng = random.Random(config.seed)
        self._prompt_order: list[int] = []

        _disable_dropout(policy)
        _disable_dropout(ref_policy)
        self.model = PolicyAndValue(policy, shared_value_trunk=config.shared_value_trunk)
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=config.learning_rate,
            eps=config.adam_eps,
            weight_decay=config.weight_decay,
        )
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.ref_policy = ref_policy.to(self.accelerator.device).eval()
        self.ref_policy.requires_grad_(False)

        eos = tokenizer.eos_token_id
        self.generation_config = GenerationConfig(
            max_new_tokens=config.max_new_tokens,
            min_new_tokens=1,
            do_sample=True,
            temperature=config.temperature,
            top_k=0,
            top_p=1.0,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
            bos_token_id=tokenizer.bos_token_id,
        )

    # ---------------------------------------------------------------- helpers
    @property
    def policy(self) -> PreTrainedModel:
        return self.accelerator.unwrap_model(self.model).policy

    def _next_prompts(self) -> list[str]:
        """This rank's share of the step's prompts: every rank draws the same global batch (one seeded order) and
        takes its slice, so the prompts of a step do not depend on the number of processes."""
        n, acc = self.config.per_device_train_batch_size, self.accelerator
        out = []
        for _ in range(n * acc.num_processes):
            if not self._prompt_order:
                self._prompt_order = list(range(len(self.train_prompts)))
                self._rng.shuffle(self._prompt_order)
            out.append(self.train_prompts[self._prompt_order.pop()])
        return out[acc.process_index * n:(acc.process_index + 1) * n]

    def _full_parameters(self):
        """generate() runs the unwrapped policy token by token: under FSDP its parameters are shards, so gather
        them for the duration (writeback=False: generation changes nothing). DDP and single-process models hold
        full parameters already."""
        from contextlib import nullcontext

        from torch.distributed.fsdp import FullyShardedDataParallel

        if isinstance(self.model, FullyShardedDataParallel):
            return FullyShardedDataParallel.summon_full_params(self.model, writeback=False, recurse=True)
        return nullcontext()

    @staticmethod
    def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def _response_logprobs(self, logits: torch.Tensor, responses: torch.Tensor, context_length: int):
        """Position context_length - 1 + t predicts responses[:, t]; logits are tempered."""
        logits = logits[:, context_length - 1 : -1] / self.config.temperature
        return _selective_logprobs(logits, responses), logits

    # ---------------------------------------------------------------- rollout
    @torch.no_grad()
    def _rollout(self, prompts: list[str]) -> dict:
        cfg, tok, acc = self.config, self.tokenizer, self.accelerator
        device = acc.device
        old_side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tok.padding_side = old_side
        query = enc["input_ids"].to(device)
        query_mask = enc["attention_mask"].to(device)
        context_length = query.shape[1]

        unwrapped = acc.unwrap_model(self.model)
        unwrapped.eval()
        with self._full_parameters(), acc.autocast():
            gen = unwrapped.policy.generate(
                input_ids=query, attention_mask=query_mask, generation_config=self.generation_config
            )
        responses = gen[:, context_length:]
        B, T = responses.shape

        # Mask everything after the first EOS (inclusive of the EOS itself).
        is_eos = responses == tok.eos_token_id
        has_eos = is_eos.any(dim=1)
        first_eos = torch.where(has_eos, is_eos.float().argmax(dim=1), torch.full_like(has_eos, T - 1, dtype=torch.long))
        idx = torch.arange(T, device=device).unsqueeze(0)
        response_mask = (idx <= first_eos.unsqueeze(1)).long()
        responses = torch.where(response_mask.bool(), responses, torch.full_like(responses, tok.pad_token_id))
        input_ids = torch.cat([query, responses], dim=1)
        attention_mask = torch.cat([query_mask, response_mask], dim=1)

        # Log-probs (policy, ref) and values, in chunks of mini_batch_size.
        logprobs, ref_logprobs, values = [], [], []
        for s in range(0, B, cfg.mini_batch_size):
            sl = slice(s, s + cfg.mini_batch_size)
            with acc.autocast():
                logits, vals = self.model(input_ids[sl], attention_mask[sl], self._position_ids(attention_mask[sl]))
                ref_logits = self.ref_policy(
                    input_ids=input_ids[sl],
                    attention_mask=attention_mask[sl],
                    position_ids=self._position_ids(attention_mask[sl]),
                    use_cache=False,
                ).logits
            lp, _ = self._response_logprobs(logits, responses[sl], context_length)
            rlp, _ = self._response_logprobs(ref_logits, responses[sl], context_length)
            logprobs.append(lp)
            ref_logprobs.append(rlp)
            values.append(vals[:, context_length - 1 : -1].float())
        logprobs = torch.cat(logprobs)
        ref_logprobs = torch.cat(ref_logprobs)
        values = torch.cat(values)

        # Sequence-level rewards.
        completions = tok.batch_decode(
            [r[m.bool()].tolist() for r, m in zip(responses, response_mask)], skip_special_tokens=True
        )
        scores = self.reward_fn(list(prompts), completions)
        scores = torch.as_tensor([float(x) for x in scores], dtype=torch.float32, device=device)
        if scores.shape != (B,):
            raise ValueError(f"reward_fn returned {tuple(scores.shape)} rewards for {B} completions")
        raw_scores = scores.clone()
        if cfg.missing_eos_penalty is not None:
            scores = scores - cfg.missing_eos_penalty * (~has_eos).float()

        maskf = response_mask.float()
        logprobs = logprobs * maskf
        ref_logprobs = ref_logprobs * maskf
        values = values * maskf
        kl = (logprobs - ref_logprobs) * maskf
        non_score_reward = -cfg.kl_coef * kl
        rewards = non_score_reward.clone()
        rewards[torch.arange(B, device=device), first_eos] += scores
        if cfg.whiten_rewards:
            rewards = masked_whiten(rewards, maskf, shift_mean=False) * maskf
        advantages, returns = compute_gae(rewards, values, cfg.gamma, cfg.lam, maskf)
        advantages = masked_whiten(advantages, maskf) * maskf

        n_tokens = int(query_mask.sum().item() + response_mask.sum().item())
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "responses": responses,
            "response_mask": maskf,
            "context_length": context_length,
            "logprobs": logprobs,
            "values": values,
            "advantages": advantages,
            "returns": returns,
            "rewards": rewards,
            "scores": raw_scores,
            "penalized_scores": scores,
            "kl": kl,
            "non_score_reward": non_score_reward,
            "has_eos": has_eos,
            "n_tokens": n_tokens,
            "completions": completions,
        }

    # ---------------------------------------------------------------- update
    def _update(self, batch: dict) -> dict:
        cfg, acc = self.config, self.accelerator
        B = batch["input_ids"].shape[0]
        ctx = batch["context_length"]
        self.model.train()
        stats = {k: [] for k in ("pg_loss", "vf_loss", "clipfrac", "vf_clipfrac", "approxkl", "entropy", "ratio")}
        for _ in range(cfg.ppo_epochs):
            perm = torch.randperm(B, device=batch["input_ids"].device)
            for m0 in range(0, B, cfg.mini_batch_size):
                mb_idx = perm[m0 : m0 + cfg.mini_batch_size]
                for u0 in range(0, cfg.mini_batch_size, cfg.micro_batch_size):
                    idx = mb_idx[u0 : u0 + cfg.micro_batch_size]
                    with acc.accumulate(self.model):
                        ids, am = batch["input_ids"][idx], batch["attention_mask"][idx]
                        mask = batch["response_mask"][idx]
                        with acc.autocast():
                            logits, vpred = self.model(ids, am, self._position_ids(am))
                        new_logprobs, resp_logits = self._response_logprobs(logits, batch["responses"][idx], ctx)
                        vpred = vpred[:, ctx - 1 : -1].float()
                        old_logprobs, old_values = batch["logprobs"][idx], batch["values"][idx]
                        adv, ret = batch["advantages"][idx], batch["returns"][idx]

                        vpred_clipped = old_values + torch.clamp(
                            vpred - old_values, -cfg.cliprange_value, cfg.cliprange_value
                        )
                        vf_losses1 = (vpred - ret) ** 2
                        vf_losses2 = (vpred_clipped - ret) ** 2
                        vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
                        vf_clipfrac = masked_mean((vf_losses2 > vf_losses1).float(), mask)

                        logratio = (new_logprobs - old_logprobs) * mask
                        ratio = torch.exp(logratio)
                        pg_losses1 = -adv * ratio
                        pg_losses2 = -adv * torch.clamp(ratio, 1.0 - cfg.cliprange, 1.0 + cfg.cliprange)
                        pg_loss = masked_mean(torch.max(pg_losses1, pg_losses2), mask)
                        loss = pg_loss + cfg.vf_coef * vf_loss

                        acc.backward(loss)
                        if acc.sync_gradients:
                            if cfg.max_grad_norm and cfg.max_grad_norm > 0:
                                acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                            self.optimizer_steps += 1
                        self.optimizer.step()
                        self.optimizer.zero_grad()

                    with torch.no_grad():
                        stats["pg_loss"].append(pg_loss.detach())
                        stats["vf_loss"].append(vf_loss.detach())
                        stats["clipfrac"].append(masked_mean((pg_losses2 > pg_losses1).float(), mask))
                        stats["vf_clipfrac"].append(vf_clipfrac.detach())
                        stats["approxkl"].append(0.5 * masked_mean(logratio**2, mask))
                        stats["entropy"].append(masked_mean(_entropy(resp_logits.detach()), mask))
                        stats["ratio"].append(masked_mean(ratio.detach(), mask))
        return {k: torch.stack(v).mean() for k, v in stats.items()}

    # ---------------------------------------------------------------- main loop
    def _reduce(self, x: torch.Tensor) -> float:
        x = x.detach().float().to(self.accelerator.device)
        return float(self.accelerator.reduce(x, reduction="mean").item())

    def step(self) -> dict:
        """One PPO iteration: sample prompts, roll out, score, update. Returns the log dict."""
        t0 = time.perf_counter()
        prompts = self._next_prompts()
        batch = self._rollout(prompts)
        upd = self._update(batch)
        del batch["completions"]
        self.global_step += 1

        n_tok = torch.tensor(float(batch["n_tokens"]), device=self.accelerator.device)
        self.tokens_seen += int(self.accelerator.reduce(n_tok, reduction="sum").item())
        mask = batch["response_mask"]
        log = {
            "step": self.global_step,
            "reward": self._reduce(batch["scores"].mean()),
            "reward_std": self._reduce(batch["scores"].std(unbiased=False)),
            "reward_penalized": self._reduce(batch["penalized_scores"].mean()),
            "kl": self._reduce(batch["kl"].sum(1).mean()),
            "non_score_reward": self._reduce(batch["non_score_reward"].sum(1).mean()),
            "policy_loss": self._reduce(upd["pg_loss"]),
            "value_loss": self._reduce(upd["vf_loss"]),
            "clipfrac": self._reduce(upd["clipfrac"]),
            "value_clipfrac": self._reduce(upd["vf_clipfrac"]),
            "approxkl": self._reduce(upd["approxkl"]),
            "entropy": self._reduce(upd["entropy"]),
            "ratio": self._reduce(upd["ratio"]),
            "advantage_mean": self._reduce(masked_mean(batch["advantages"], mask)),
            "return_mean": self._reduce(masked_mean(batch["returns"], mask)),
            "value_mean": self._reduce(masked_mean(batch["values"], mask)),
            "response_length": self._reduce(mask.sum(1).mean()),
            "eos_fraction": self._reduce(batch["has_eos"].float().mean()),
            "tokens_seen": self.tokens_seen,
            "optimizer_steps": self.optimizer_steps,
            "lr": self.optimizer.param_groups[0]["lr"],
            "step_time_s": time.perf_counter() - t0,
        }
        self.history.append(log)
        return log

    STATE_FILE = "ppo_state.json"   # written last: a checkpoint folder without it is incomplete

    def train(self, resume_from_checkpoint: Optional[str] = None) -> list[dict]:
        """Run config.num_rollout_steps PPO iterations (continuing a checkpoint's run when given); logs go to
        output_dir/ppo_log.jsonl."""
        cfg, acc = self.config, self.accelerator
        if resume_from_checkpoint is not None:
            self.load_checkpoint(resume_from_checkpoint)
        log_path = os.path.join(cfg.output_dir, self.LOG_FILE)
        if acc.is_main_process:
            os.makedirs(cfg.output_dir, exist_ok=True)
            with open(log_path, "w", encoding="utf-8") as f:  # this run's log only, never appended across reruns
                for row in self.history:                       # (a resumed run's: restored from its checkpoint)
                    if row["step"] % cfg.logging_steps == 0:
                        f.write(json.dumps(row) + "\n")
        bar = tqdm(
            total=cfg.num_rollout_steps,
            initial=self.global_step,
            desc="PPO",
            disable=cfg.disable_tqdm or not acc.is_local_main_process,
        )
        try:
            while self.global_step < cfg.num_rollout_steps:
                log = self.step()
                if acc.is_main_process and (
                    self.global_step % cfg.logging_steps == 0 or self.global_step == cfg.num_rollout_steps
                ):
                    with open(log_path, "a", encoding="utf-8") as f:
                        f.write(json.dumps(log) + "\n")
                if cfg.save_steps and self.global_step % cfg.save_steps == 0 \
                        and self.global_step < cfg.num_rollout_steps:
                    self.save_checkpoint()
                bar.update(1)
                bar.set_postfix(reward=f"{log['reward']:.3f}", kl=f"{log['kl']:.3f}", len=f"{log['response_length']:.1f}")
        finally:
            bar.close()
        return self.history

    def save_checkpoint(self) -> str:
        """output_dir/checkpoint-<step>: model, optimizer and every rank's RNG (accelerate save_state), then the
        counters, history and prompt order; older checkpoints are removed once this one is complete."""
        import shutil

        acc = self.accelerator
        path = os.path.join(self.config.output_dir, f"checkpoint-{self.global_step}")
        acc.save_state(path)
        if acc.is_main_process:
            state = {"global_step": self.global_step, "optimizer_steps": self.optimizer_steps,
                     "tokens_seen": self.tokens_seen, "history": self.history,
                     "prompt_rng": self._rng.getstate(), "prompt_order": self._prompt_order}
            with open(os.path.join(path, self.STATE_FILE), "w", encoding="utf-8") as f:
                json.dump(state, f)
            for name in os.listdir(self.config.output_dir):
                if name.startswith("checkpoint-") and name != os.path.basename(path):
                    shutil.rmtree(os.path.join(self.config.output_dir, name), ignore_errors=True)
        acc.wait_for_everyone()
        return path

    def load_checkpoint(self, path: str) -> None:
        self.accelerator.load_state(path)
        with open(os.path.join(path, self.STATE_FILE), encoding="utf-8") as f:
            state = json.load(f)
        self.global_step, self.optimizer_steps = state["global_step"], state["optimizer_steps"]
        self.tokens_seen, self.history = state["tokens_seen"], state["history"]
        version, internal, gauss = state["prompt_rng"]
        self._rng.setstate((version, tuple(internal), gauss))
        self._prompt_order = list(state["prompt_order"])

    def save_model(self, output_dir: Optional[str] = None) -> None:
        """Save the policy (no value head) in save_pretrained format, plus the tokenizer."""
        output_dir = output_dir or self.config.output_dir
        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            os.makedirs(output_dir, exist_ok=True)
            self.policy.save_pretrained(output_dir)
            self.tokenizer.save_pretrained(output_dir)
