"""The exact, fast sequence log-probability engine: ``log p(response | prompt)`` summed over response tokens.

Dr.SoW rewards, RewardBench-style evaluation and DPO reference log-probs all need this number. The engine
knows torch and transformers only (nothing of ``datasets`` or the Hub).

How a (prompt, response) pair becomes tokens (:func:`encode_pairs`):

- Both ``prompt`` and ``prompt + response`` are tokenized with the model's own tokenizer and its default
  special tokens. The response's tokens start at the first position where the two token lists differ, so
  a token that merges across the boundary (``"Hel" + "lo"`` -> ``"Hello"``) counts as a response token and
  the context is the token list before it.
- Special tokens appear exactly once: when the text already starts with the tokens the tokenizer adds in
  front (a chat template that renders ``bos_token``), the added copy is dropped, so BOS is never doubled.
- A tokenizer that appends EOS to every text puts EOS at the end of the full text: it is scored, as the
  last response token (the model's probability of ending the response there).

How it is computed (:func:`score_sequences`):

- Only response positions are scored: the transformer body runs once, the hidden states of the positions
  that predict response tokens are gathered, and the LM head and the log-sum-exp run on those rows only,
  ``chunk_size`` rows at a time, in fp32 (logits are upcast before the log-sum-exp, whatever the model's
  dtype). No ``[batch, length, vocab]`` tensor is ever built.
- Prompts shared by several responses are computed once (``strategy``):

  - ``"packed"`` (the default where the model allows it): one row holds a prompt followed by its
    responses, ``[prompt][response 1]...[response k]``, with a custom 4D attention mask (the prompt causal
    among itself; each response attends to the whole prompt and causally to its own tokens, never to
    another response) and position ids that restart at the prompt's length for every response. One
    forward gives every response's hidden states; the prompt's last position predicts each response's
    first token. Rows are cut at ``max_packed_length`` tokens (a prompt's other responses go to further
    rows) and right-padded (a padding position attends to itself only, so no row is fully masked). The
    mask is boolean (True = attend) for ``sdpa`` and additive float (0 or the dtype's minimum) for
    ``eager``; other attention implementations (flash, flex), sliding-window layers, and models whose
    packed rows do not reproduce plain rows on a small probe (checked once per model) do not pack.
  - ``"cache"``: batches of distinct prompts run first and their key/value caches are kept (as many as
    ``cache_bytes`` holds: a window); the window's responses, bucketed by length across the window, then
    run as batches continuing from them (each row's cache gathered into a new ``DynamicCache``, never
    mutating the kept one; position ids start at the prompt's length; padding masked). Prompts with a
    single response, and models whose cache is not a plain ``DynamicCache`` (sliding-window or recurrent
    layers), run prompt + response in one pass instead.
  - ``"none"``: prompt + response in one pass per row.

  All give the same numbers. Pairs whose prompt was cut by ``max_length`` usually no longer share it
  (each is cut to fit its own response).
- Batches are bucketed by length, and their composition depends only on the inputs' contents, never on
  their order; results come back in input order. Per-token log-probs are fp32, sums are accumulated in
  float64 (bf16 sums would resolve only ~1 nat at -300).
"""

from .encoding import EncodedPair, SequenceScores, encode_pairs
from .engine import SCORING_PATHS, score_encoded, score_sequences
from .runner import DISABLE_PROGRESS_ENV

__all__ = [
    "DISABLE_PROGRESS_ENV",
    "SCORING_PATHS",
    "EncodedPair",
    "SequenceScores",
    "encode_pairs",
    "score_encoded",
    "score_sequences",
]
