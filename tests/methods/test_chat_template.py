"""A hub base model whose tokenizer has no chat template (Meta-Llama-3-8B's): SFT under assistant_only_loss crashed
inside TRL with a TypeError; `base.chat_template: llama3` gives it Meta's Llama-3-Instruct template with generation
markers. Guards against the crash, a template that renders differently from Meta's, and a loss on prompt tokens."""

import json

import pytest

from methods.base_model import save_hub_base
from methods.registry import TrainContext
from pipeline.io import InputError
from world.rehearsal_mirror import BASE_MODEL, write_base_model
from world.tasks import Item

# meta-llama/Meta-Llama-3-8B-Instruct, tokenizer_config.json (the upstream template, without generation markers)
META_LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
CONVERSATION = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "The answer is 5. "},
                {"role": "user", "content": "Now add 10 to that number."},
                {"role": "assistant", "content": "The answer is 15."}]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    items = [Item(f"i{k}", "add", (f"What is {k} + 3?",), (str(k + 3),)) for k in range(20)]
    write_base_model(root / BASE_MODEL, {"sft": items}, seed=0)
    return root


def sft_context(policy, tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": CONVERSATION}) + "\n" for _ in range(4)))
    return TrainContext(method="sft", block={"effective_batch_size": 2, "per_device_train_batch_size": 2,
                                             "trainer": {"max_steps": 1, "max_length": 64}},
                        policy=policy, reference=policy, data={"sft": data}, reward_model=None,
                        out_dir=tmp_path / "out", seed=0)


def test_sft_on_a_base_tokenizer_without_template_names_the_config_key(hub, tmp_path):
    import methods.sft

    with pytest.raises(InputError, match="config key base.chat_template: the tokenizer of .* has no chat template"):
        methods.sft.train(sft_context(hub / BASE_MODEL, tmp_path))


def test_llama3_template_renders_as_meta_and_sft_trains_on_answers_only(hub, tmp_path):
    import methods.sft
    from transformers import AutoTokenizer

    base = tmp_path / "base"
    save_hub_base({"hub_id": BASE_MODEL, "chat_template": "llama3"}, 0, base, mirror=str(hub))
    tokenizer = AutoTokenizer.from_pretrained(base)
    reference = AutoTokenizer.from_pretrained(base)
    reference.chat_template = META_LLAMA3_TEMPLATE
    for generation_prompt in (False, True):
        conversation = CONVERSATION[:3] if generation_prompt else CONVERSATION
        assert tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=generation_prompt) \
            == reference.apply_chat_template(conversation, tokenize=False, add_generation_prompt=generation_prompt)
    encoded = tokenizer.apply_chat_template(CONVERSATION, return_dict=True, return_assistant_tokens_mask=True)
    trained = tokenizer.decode([t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"]) if m])
    assert trained == "The answer is 5.<|eot_id|>The answer is 15.<|eot_id|>"
    assert tokenizer.eos_token == "<|eot_id|>" and tokenizer.pad_token == "<|end_of_text|>"
    assert methods.sft.train(sft_context(base, tmp_path)).tokens_seen > 0
