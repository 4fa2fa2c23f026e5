"""A small byte-level BPE tokenizer trained on a corpus, for new small models.

The default tokenizer has 49,152 entries; for a 128-wide model its LM head is 8x the rest of the
network, and on a CPU it is most of the time of every SFT and RL step. A model trained from scratch on
a narrow corpus (:mod:`sarl.data.synthetic`) needs a few hundred tokens. :func:`train_tokenizer`
builds one with the ``tokenizers`` library:

- byte-level, so every string round-trips exactly (``decode(encode(s)) == s``), in-corpus or not;
- digits are always single tokens (as in the default tokenizer), so numbers are spelled digit by digit;
- the special tokens and the chat template are those of a template tokenizer (the default model's:
  ``<|im_start|>``/``<|im_end|>``, ChatML), so prompts render exactly as for the default model.

It saves and loads like any Hugging Face tokenizer (``save_pretrained`` next to the model weights).
"""

from __future__ import annotations

from collections.abc import Iterable

from sarl.errors import SarlError


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512, template=None):
    """A byte-level BPE tokenizer with at most ``vocab_size`` entries (the special tokens, the 256 bytes
    and the merges learnt from ``texts``; fewer when the corpus offers fewer merges); special tokens and chat template copied from ``template``
    (default: the default model's tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from sarl.models import load_tokenizer

    template = template or load_tokenizer(None)
    specials = list(dict.fromkeys(template.all_special_tokens))
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(specials) + 1:
        raise SarlError(f"vocab_size must be > {len(alphabet) + len(specials)} (256 bytes + special tokens), "
                         f"got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=template.bos_token, eos_token=template.eos_token,
                                   unk_token=template.unk_token, pad_token=template.pad_token)
    fast.chat_template = template.chat_template
    return fast
