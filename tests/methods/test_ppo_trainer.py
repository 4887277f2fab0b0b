"""Tests for methods/ppo_trainer.py: GAE by hand, config validation, and a tiny PPO run on CPU
whose reward (count of the letter "a" in the completion) must go up."""

import json
import math
import os

import pytest
import torch

from methods.ppo_trainer import PPOConfig, PPOTrainer, compute_gae, masked_whiten

CHARS = list("abcdefgh ")
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tk.add_special_tokens(SPECIALS)
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<|user|>", "<|assistant|>"],
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def make_model(tok, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg)


def make_prompts(tok, n=16):
    words = ["bcd", "hef", "gg h", "dbc", "feh", "cab", "hd", "ge f"]
    return [
        tok.apply_chat_template(
            [{"role": "user", "content": words[i % len(words)] * (1 + i % 3)}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for i in range(n)
    ]


def count_a(prompts, completions):
    return [float(c.count("a")) for c in completions]


def make_trainer(tmp_path, reward_fn=count_a, **overrides):
    tok = make_tokenizer()
    policy = make_model(tok, seed=0)
    ref = make_model(tok, seed=0)
    ref.load_state_dict(policy.state_dict())
    kw = dict(
        learning_rate=3e-3,
        per_device_train_batch_size=32,
        mini_batch_size=16,
        gradient_accumulation_steps=2,
        ppo_epochs=2,
        num_rollout_steps=20,
        max_new_tokens=8,
        temperature=1.0,
        kl_coef=0.02,
        gamma=1.0,
        lam=0.95,
        vf_coef=0.5,
        seed=0,
        use_cpu=True,
        disable_tqdm=True,
        output_dir=str(tmp_path / "ppo"),
    )
    kw.update(overrides)
    cfg = PPOConfig(**kw)
    return PPOTrainer(cfg, policy, ref, tok, reward_fn, make_prompts(tok)), tok


# ---------------------------------------------------------------------------------------------
def test_gae_matches_hand_computation():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.0, 9.0]])
    values = torch.tensor([[0.5, 1.0, 0.0], [0.2, 0.4, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv, ret = compute_gae(rewards, values, gamma, lam, mask)
    # Row 0 (length 3): d2 = 2; d1 = 0 + .9*0 - 1 = -1; d0 = 1 + .9*1 - .5 = 1.4
    # A2 = 2; A1 = -1 + .45*2 = -0.1; A0 = 1.4 + .45*(-0.1) = 1.355
    # Row 1 (length 2, third position is padding -> terminal): d1 = 1 - .4 = 0.6; d0 = .5 + .9*.4 - .2 = 0.66
    # A1 = 0.6; A0 = 0.66 + .45*0.6 = 0.93
    expected_adv = torch.tensor([[1.355, -0.1, 2.0], [0.93, 0.6, 0.0]])
    expected_ret = torch.tensor([[1.855, 0.9, 2.0], [1.13, 1.0, 0.0]])
    torch.testing.assert_close(adv, expected_adv)
    torch.testing.assert_close(ret, expected_ret)


def test_gae_lambda_extremes():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, 0.25, 1.0]])
    # lam = 0: one-step TD errors; lam = 1, gamma = 1: Monte-Carlo return minus value.
    adv0, _ = compute_gae(rewards, values, 1.0, 0.0)
    torch.testing.assert_close(adv0, torch.tensor([[1.0 + 0.25 - 0.5, 2.0 + 1.0 - 0.25, 3.0 - 1.0]]))
    adv1, ret1 = compute_gae(rewards, values, 1.0, 1.0)
    torch.testing.assert_close(ret1, torch.tensor([[6.0, 5.0, 3.0]]))
    torch.testing.assert_close(adv1, torch.tensor([[5.5, 4.75, 2.0]]))


def test_masked_whiten_ignores_padding():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    m = torch.tensor([[1, 1, 1, 0]])
    w = masked_whiten(x, m)
    assert abs(float(w[0, :3].mean())) < 1e-5
    assert abs(float(w[0, :3].std()) - 1.0) < 1e-3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"per_device_train_batch_size": 10, "mini_batch_size": 4}, "divisible by mini_batch_size"),
        ({"mini_batch_size": 8, "per_device_train_batch_size": 4}, "cannot exceed"),
        ({"mini_batch_size": 4, "gradient_accumulation_steps": 3}, "gradient_accumulation_steps"),
        ({"ppo_epochs": 0}, "ppo_epochs"),
        ({"num_rollout_steps": -1}, "num_rollout_steps"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"temperature": 0.0}, "temperature"),
        ({"gamma": 1.5}, "gamma"),
        ({"lam": -0.1}, "lam"),
        ({"cliprange": 0.0}, "cliprange"),
        ({"cliprange_value": -1.0}, "cliprange_value"),
        ({"kl_coef": -0.1}, "kl_coef"),
        ({"vf_coef": -1.0}, "vf_coef"),
        ({"missing_eos_penalty": -1.0}, "missing_eos_penalty"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PPOConfig(**kwargs)


def test_config_fields_documented():
    import dataclasses

    for f in dataclasses.fields(PPOConfig):
        assert f.metadata.get("help"), f.name
        assert f.default is not dataclasses.MISSING, f.name
    PPOConfig()  # defaults are consistent


def test_ppo_increases_reward(tmp_path):
    trainer, tok = make_trainer(tmp_path)
    ref_before = {k: v.clone() for k, v in trainer.ref_policy.state_dict().items()}
    history = trainer.train()

    assert len(history) == trainer.config.num_rollout_steps
    rewards = [h["reward"] for h in history]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    print(f"PPO mean reward first 5 steps {first:.3f} -> last 5 steps {last:.3f}")
    assert last > first + 1.0, rewards
    for h in history:
        for key in ("reward", "kl", "policy_loss", "value_loss", "clipfrac", "response_length"):
            assert math.isfinite(h[key]), (key, h)
        assert 0.0 <= h["clipfrac"] <= 1.0
        assert 1.0 <= h["response_length"] <= trainer.config.max_new_tokens
    assert history[-1]["kl"] > 0  # policy has moved away from the reference

    # The reference is frozen.
    for k, v in trainer.ref_policy.state_dict().items():
        assert torch.equal(v, ref_before[k]), k

    # Token accounting: at least one prompt token and one completion token per rollout row.
    cfg = trainer.config
    assert trainer.tokens_seen == history[-1]["tokens_seen"]
    assert trainer.tokens_seen >= cfg.num_rollout_steps * cfg.per_device_train_batch_size * 2
    # optimizer steps: ppo_epochs * num_mini_batches per iteration
    assert trainer.optimizer_steps == cfg.num_rollout_steps * cfg.ppo_epochs * cfg.num_mini_batches

    # JSONL log
    with open(os.path.join(cfg.output_dir, "ppo_log.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert [line["step"] for line in lines] == list(range(1, cfg.num_rollout_steps + 1))
    assert lines[-1]["reward"] == pytest.approx(history[-1]["reward"])

    # save_model: policy only, reloadable, tokenizer alongside, no value head weights.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "saved"
    trainer.save_model(str(out))
    reloaded = AutoModelForCausalLM.from_pretrained(str(out))
    sd = reloaded.state_dict()
    assert not any("value" in k for k in sd)
    for k, v in trainer.policy.state_dict().items():
        torch.testing.assert_close(sd[k], v)
    tok2 = AutoTokenizer.from_pretrained(str(out))
    assert tok2.pad_token == tok.pad_token and tok2.eos_token == tok.eos_token


def test_shared_trunk_and_options_smoke(tmp_path):
    calls = []

    def reward(prompts, completions):
        calls.append((list(prompts), list(completions)))
        return count_a(prompts, completions)

    trainer, _ = make_trainer(
        tmp_path,
        reward_fn=reward,
        shared_value_trunk=True,
        whiten_rewards=True,
        missing_eos_penalty=1.0,
        num_rollout_steps=2,
        per_device_train_batch_size=8,
        mini_batch_size=4,
        gradient_accumulation_steps=1,
        logging_steps=2,
    )
    assert trainer.accelerator.unwrap_model(trainer.model).value_trunk is None
    history = trainer.train()
    assert len(history) == 2 and all(math.isfinite(h["kl"]) for h in history)
    assert len(calls) == 2 and len(calls[0][0]) == 8 and len(calls[0][1]) == 8
    assert all(p.endswith("<|assistant|>") for p in calls[0][0])
    # logging_steps=2: only step 2 is written.
    with open(os.path.join(trainer.config.output_dir, "ppo_log.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [2]


def test_bad_reward_fn_length(tmp_path):
    trainer, _ = make_trainer(
        tmp_path,
        reward_fn=lambda p, c: [0.0],
        num_rollout_steps=1,
        per_device_train_batch_size=4,
        mini_batch_size=4,
        gradient_accumulation_steps=1,
    )
    with pytest.raises(ValueError, match="reward_fn returned"):
        trainer.train()


@pytest.mark.parametrize("shared", [False, True])
def test_rollout_consistency(tmp_path, shared):
    """Left padding + position ids give the same log-probs as an unpadded forward; the scalar reward
    sits on the last generated token; the first PPO pass starts at ratio 1."""
    trainer, _ = make_trainer(
        tmp_path,
        shared_value_trunk=shared,
        kl_coef=0.0,
        per_device_train_batch_size=8,
        mini_batch_size=8,
        gradient_accumulation_steps=1,
        ppo_epochs=1,
    )
    batch = trainer._rollout(trainer._next_prompts())
    ctx = batch["context_length"]
    assert len({int(m[:ctx].sum()) for m in batch["attention_mask"]}) > 1  # prompts really are padded
    for i in range(8):
        real = batch["attention_mask"][i].bool()
        ids = batch["input_ids"][i][real].unsqueeze(0)
        q = int(batch["attention_mask"][i][:ctx].sum())
        n = int(batch["response_mask"][i].sum())
        assert n >= 1
        with torch.no_grad():
            logits = trainer.policy(ids).logits[0, q - 1 : -1] / trainer.config.temperature
        lp = torch.log_softmax(logits, -1).gather(-1, ids[0, q:, None]).squeeze(-1)
        torch.testing.assert_close(lp, batch["logprobs"][i][:n], atol=1e-5, rtol=0)
        expected = torch.zeros_like(batch["rewards"][i])
        expected[n - 1] = batch["scores"][i]
        torch.testing.assert_close(batch["rewards"][i], expected)
        if batch["has_eos"][i]:
            assert int(batch["responses"][i][n - 1]) == trainer.tokenizer.eos_token_id
    stats = trainer._update(batch)  # one epoch, one mini-batch: nothing has changed before it
    assert float(stats["ratio"]) == pytest.approx(1.0, abs=1e-5)
    assert float(stats["clipfrac"]) == 0.0


def test_second_trainer_with_other_precision_in_same_process(tmp_path):
    small = dict(num_rollout_steps=1, per_device_train_batch_size=4, mini_batch_size=4, gradient_accumulation_steps=1)
    make_trainer(tmp_path / "a", **small)[0].train()
    trainer, _ = make_trainer(tmp_path / "b", bf16=True, **small)
    assert trainer.accelerator.mixed_precision == "bf16"
    assert math.isfinite(trainer.train()[0]["kl"])
