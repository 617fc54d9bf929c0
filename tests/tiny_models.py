"""Tiny random causal LMs and a locally trained byte-level BPE tokenizer, shared by the whole test suite.

Everything builds offline in well under a second:

- :func:`gpt2_tokenizer`: GPT-2 style, no BOS is added (``<|endoftext|>`` is BOS, EOS and UNK).
- :func:`llama_tokenizer`: adds ``<s>`` in front of every text through its post-processor (as Llama-2 and
  Mistral do), ``</s>`` is EOS; optionally also appends EOS (``add_eos=True``). It carries
  :data:`CHAT_TEMPLATE`, which renders ``bos_token`` itself, so tokenizing a rendered conversation with the
  default special tokens yields a doubled BOS: the realistic trap the log-prob engine must avoid.
- :data:`MERGE_PROMPT` / :data:`MERGE_RESPONSE`: ``"... Hel"`` + ``"lo ..."``: the boundary token merges
  (``"Hello"`` is one token of the vocabulary, ``"Hel"`` is not a prefix of its tokenization).
- :func:`tiny_gpt2`, :func:`tiny_llama`: seeded, fp32, eval mode, vocabulary sized to the tokenizer.
- :func:`save_tiny`: ``save_pretrained`` of a model and its tokenizer into one folder.
- :func:`save_tiny_sentence_transformer`: a random 2-layer BERT with a WordPiece tokenizer and mean
  pooling, saved as a sentence-transformers model (for the static and ONNX embedding backends).
- :class:`Tiny`: a (model, tokenizer) pair; ``tests/conftest.py`` serves them as fixtures (``gpt2_lm``,
  ``llama_lm``: per-test deep copies of session-built ones; ``gpt2_lm_dir``, ``llama_lm_dir``: saved folders).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

VOCAB_SIZE = 400
SPECIAL_TOKENS = ["<|endoftext|>", "<s>", "</s>", "<pad>"]

CORPUS = [
    "Hello! How are you today? Hello there, hello again.",
    "Hello, I am a helpful assistant. Hello world.",
    "Human: What is the capital of France? Assistant: The capital of France is Paris.",
    "Human: Can you help me with my homework? Assistant: Of course, what is the question?",
    "Human: How do I bake bread? Assistant: Mix flour, water, salt and yeast, then let it rise.",
    "Human: Tell me a joke. Assistant: Why did the chicken cross the road? To get to the other side.",
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "The weather is nice today, so we went for a walk in the park.",
    "Please be kind and respectful to everyone you meet.",
    "I cannot help with that request, because it could hurt someone.",
    "Water boils at one hundred degrees at sea level.",
    "The cat sat on the mat and looked at the bird outside the window.",
    "She reads a book every week and writes short stories on the weekend.",
    "Numbers: one, two, three, four, five, six, seven, eight, nine, ten.",
    "Thank you very much for your help. You are welcome!",
    "It is important to drink water and to sleep well.",
    "What time is it? It is half past seven in the evening.",
    "My favourite colours are blue, green and yellow.",
    "They planted trees in the garden and watched them grow.",
]

#: A minimal chat template; it renders ``bos_token`` itself, like the Llama-2 and Mistral templates do.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

#: The prompt/response pair whose boundary token merges: "Hel" + "lo" tokenizes as "Hello".
MERGE_PROMPT = "Human: Say hi. Assistant: Hel"
MERGE_RESPONSE = "lo there, hello again."


@functools.lru_cache(maxsize=1)
def _trained_bpe_json() -> str:
    """Train the byte-level BPE once per process (deterministic) and return it serialised."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok.to_str()


def gpt2_tokenizer() -> PreTrainedTokenizerFast:
    """GPT-2 style tokenizer: adds no special token; ``<|endoftext|>`` is BOS, EOS and UNK."""
    tok = Tokenizer.from_str(_trained_bpe_json())
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def llama_tokenizer(*, add_eos: bool = False) -> PreTrainedTokenizerFast:
    """Llama style tokenizer: ``<s>`` prepended by the post-processor (``</s>`` appended too if ``add_eos``).

    It carries :data:`CHAT_TEMPLATE` and a ``<pad>`` token.
    """
    tok = Tokenizer.from_str(_trained_bpe_json())
    bos, eos = "<s>", "</s>"
    single = f"{bos} $A" + (f" {eos}" if add_eos else "")
    pair = f"{bos} $A {bos} $B" + (f" {eos}" if add_eos else "")
    tok.post_processor = processors.TemplateProcessing(
        single=single,
        pair=pair,
        special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token="<pad>",
        chat_template=CHAT_TEMPLATE,
    )


def tiny_gpt2(tokenizer: PreTrainedTokenizerFast, *, seed: int = 0) -> GPT2LMHeadModel:
    """A 2-layer random GPT-2 (hidden 32, 2 heads), fp32, eval mode."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        # Larger than GPT-2's 0.02, so the next-token distributions are far from uniform and an
        # off-by-one position shows in the log-probs.
        initializer_range=0.2,
    )
    return GPT2LMHeadModel(config).eval()


def tiny_llama(tokenizer: PreTrainedTokenizerFast, *, seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer random Llama (hidden 32, 4 heads, 2 key/value heads), fp32, eval mode."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.2,
    )
    return LlamaForCausalLM(config).eval()


def save_tiny(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, path: str | Path) -> Path:
    """Write ``model`` and ``tokenizer`` into ``path`` with ``save_pretrained``; return the folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class Tiny(NamedTuple):
    """A tiny model with its tokenizer."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast


def bert_tokenizer() -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer trained on :data:`CORPUS` with BERT's special tokens and post-processor."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]"))
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def save_tiny_sentence_transformer(path: str | Path, *, seed: int = 0) -> Path:
    """Write a sentence-transformers model into ``path``: a random 2-layer BERT (hidden 32), mean pooling.

    The layout is the one ``SentenceTransformer.save`` writes (``modules.json``, ``1_Pooling/``,
    ``2_Normalize/``), so it loads, distils and exports like all-MiniLM-L6-v2, in well under a second.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    path = Path(path)
    tokenizer = bert_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        initializer_range=0.2,
    )
    backbone = save_tiny(BertModel(config).eval(), tokenizer, path / "backbone")
    transformer = Transformer(str(backbone), max_seq_length=128)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean"), Normalize()], device="cpu")
    model.save(str(path / "model"))
    return path / "model"
