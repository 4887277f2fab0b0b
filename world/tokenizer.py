"""A byte-level BPE tokenizer trained locally on the world's text, with digits split one per token and a chat
template whose assistant turn ends with the end-of-sequence token (so a prompt rendered with the generation
prompt is an exact prefix of prompt + completion, as TRL checks)."""

from __future__ import annotations

from typing import Iterable

PAD, EOS, BOS = "<|pad|>", "<|eos|>", "<|bos|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# {% generation %} marks the assistant tokens, so TRL's assistant_only_loss trains on answers only.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + '<|eos|>' }}{% endgeneration %}"
    "{% else %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, pad: str | None = PAD, eos: str = EOS, bos: str = BOS,
                    extra_special: tuple[str, ...] = ROLE_TOKENS, chat_template: str | None = CHAT_TEMPLATE,
                    add_bos: bool = False):
    """Train the BPE tokenizer and wrap it as a transformers fast tokenizer with the chat template (the defaults:
    the micro world's). ``add_bos`` prepends ``bos`` to every encoding, as Llama-3's tokenizer does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[t for t in (pad, eos, bos, *extra_special) if t is not None],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if add_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.token_to_id(bos))])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=pad, eos_token=eos, bos_token=bos, padding_side="left"
    )
    fast.chat_template = chat_template
    return fast
