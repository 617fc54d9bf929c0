"""Choosing a path and scoring: :func:`score_sequences` and :func:`score_encoded`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, RowError
from .cached import score_full, score_shared, shared_plan
from .encoding import EncodedPair, SequenceScores, encode_pairs
from .packed import MASK_FORMATS, SCORING_PATHS, pack_plan, packing_checked, score_packed
from .runner import Runner, progress_enabled

logger = logging.getLogger(__name__)


def _strategy(runner: Runner, model, strategy: str | None, share_prompts: bool | None) -> str:
    """The path to take: the one asked for, or the fastest the model allows (packed > cache > none)."""
    if strategy is not None and strategy not in SCORING_PATHS:
        raise ConfigError(f"strategy must be one of {', '.join(SCORING_PATHS)} or None, got {strategy!r}")
    if strategy is not None and share_prompts is not None and share_prompts != (strategy != "none"):
        raise ConfigError(
            f"share_prompts={share_prompts} contradicts strategy={strategy!r}; give one of them"
        )
    if strategy == "none" or share_prompts is False:
        return "none"
    if strategy in (None, "cache") and not runner.can_share and (strategy or share_prompts):
        raise ConfigError(
            f"sharing prompts needs a plain key/value cache, but {type(model).__name__} has "
            "sliding-window or recurrent layers; leave share_prompts and strategy at None"
        )
    if strategy == "cache":  # asked for, and allowed (checked above): no packing probe needed
        return "cache"
    packable = runner.can_share and runner.attn in MASK_FORMATS and packing_checked(model, runner)
    if strategy == "packed" and not packable:
        raise ConfigError(
            f"strategy='packed' needs full attention that takes a custom 4D mask (sdpa or eager) and "
            f"honours position ids; {type(model).__name__} has attention {runner.attn!r}"
            + ("" if runner.can_share else " and sliding-window or recurrent layers")
            + "; use strategy=None"
        )
    if strategy == "packed" or (strategy is None and packable):
        return "packed"
    return "cache" if runner.can_share else "none"


def score_encoded(
    model,
    pairs: Sequence[EncodedPair],
    *,
    batch_size: int = 16,
    chunk_size: int = 512,
    share_prompts: bool | None = None,
    cache_bytes: int = 2 * 1024**3,
    return_token_logps: bool = False,
    show_progress: bool | None = None,
    strategy: str | None = None,
    max_packed_length: int = 4096,
) -> SequenceScores:
    """Score already tokenized pairs (see :func:`score_sequences` for the options)."""
    if min(batch_size, chunk_size, cache_bytes, max_packed_length) < 1:
        raise ConfigError(
            "batch_size, chunk_size, cache_bytes and max_packed_length must be >= 1, "
            f"got {batch_size}, {chunk_size}, {cache_bytes} and {max_packed_length}"
        )
    pairs = list(pairs)
    for i, pair in enumerate(pairs):
        if not pair.context or not pair.response:
            raise RowError(
                f"expected at least one context and one response token, found {len(pair.context)} and "
                f"{len(pair.response)}",
                row=i,
            )
    n = len(pairs)
    sums = np.zeros(n, dtype=np.float64)
    token_logps: list[np.ndarray | None] = [None] * n
    n_tokens = np.array([len(p.response) for p in pairs], dtype=np.int64)
    truncated = np.array([p.truncated for p in pairs], dtype=bool)
    tokens_cut = np.array([p.tokens_cut for p in pairs], dtype=np.int64)
    if n == 0:
        return SequenceScores(sums, n_tokens, truncated, [] if return_token_logps else None, tokens_cut)

    def sink(items: list[int], values: torch.Tensor) -> None:
        values = values.cpu().numpy()
        ends = np.cumsum([len(pairs[i].response) for i in items])[:-1]
        for i, part in zip(items, np.split(values, ends), strict=True):
            sums[i] = part.sum(dtype=np.float64)
            token_logps[i] = part

    was_training = model.training
    model.eval()  # dropout would make the scores random
    bar = None
    try:
        with torch.inference_mode():
            runner = Runner(model, chunk_size)
            path = _strategy(runner, model, strategy, share_prompts)
            logger.debug("Scoring %d pairs with strategy %r", n, path)
            single, packs, plan = list(range(n)), [], []
            if path == "packed":
                single, packs = [], pack_plan(pairs, list(range(n)), batch_size, max_packed_length)
            elif path == "cache":
                counts: dict[tuple[int, ...], int] = {}
                for p in pairs:
                    counts[p.context] = counts.get(p.context, 0) + 1
                shared = [i for i, p in enumerate(pairs) if share_prompts or counts[p.context] > 1]
                single = [i for i, p in enumerate(pairs) if not share_prompts and counts[p.context] == 1]
                cache_tokens = 1  # only matters (and is measured) with more than one batch of prompts
                if len({pairs[i].context for i in shared}) > batch_size:
                    cache_tokens = cache_bytes // runner.cache_bytes_per_token(pairs[shared[0]].context[0])
                plan = shared_plan(pairs, shared, batch_size, cache_tokens)
            n_batches = (
                -(-len(single) // batch_size)
                + len(packs)
                + sum(len(w.contexts) + len(w.responses) for w in plan)
            )
            bar = tqdm(
                total=n_batches,
                desc="Scoring sequences",
                unit="batch",
                disable=not progress_enabled(show_progress, n_batches),
            )
            if single:
                score_full(runner, pairs, single, batch_size, sink, bar)
            if packs:
                score_packed(runner, pairs, packs, sink, bar)
            if plan:
                score_shared(runner, pairs, plan, sink, bar)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    return SequenceScores(
        sums, n_tokens, truncated, list(token_logps) if return_token_logps else None, tokens_cut
    )


_ROTARY_KEYS = (
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "rotary_dim",
    "rotary_pct",
    "rotary_emb_base",
)


def context_length(model) -> int | None:
    """The most positions the model can take, where more fail: the size of its learned position table.

    That is ``n_positions`` or ``max_position_embeddings`` of a model with absolute (learned) positions,
    such as GPT-2, whose embedding lookup fails past it. Models with rotary positions (Llama, Qwen, ...)
    compute any position, so they have no hard limit here: None.
    """
    config = getattr(model, "config", None)
    if config is None or any(getattr(config, key, None) is not None for key in _ROTARY_KEYS):
        return None
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context_length(
    model,
    pairs: Sequence[EncodedPair],
    row_labels: Sequence[int | str] | None,
    max_length: int | None,
    row_columns: Sequence[str] | None = None,
) -> None:
    """Refuse, before the model runs, a pair longer than the model's context, naming its row and lengths.

    ``row_columns`` names each pair's response column in the error (default ``"response"``).
    """
    limit = context_length(model)
    if limit is None or not pairs:
        return
    lengths = np.fromiter((len(p.context) + len(p.response) for p in pairs), dtype=np.int64, count=len(pairs))
    over = np.flatnonzero(lengths > limit)
    if not len(over):
        return
    k = int(over[0])
    label = row_labels[k] if row_labels is not None else k
    fix = (
        f"lower max_length={max_length} to at most {limit}"
        if max_length is not None
        else f"pass max_length={limit} (or less) to cut it, counted as truncated"
    )
    raise RowError(
        f"the prompt + response is {lengths[k]} tokens ({len(pairs[k].context)} of prompt, "
        f"{len(pairs[k].response)} of response): expected at most the model's context of {limit} "
        f"tokens; {fix}",
        row=label,
        column=row_columns[k] if row_columns is not None else "response",
    )


def score_sequences(
    model,
    tokenizer,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    return_token_logps: bool = False,
    show_progress: bool | None = None,
    chunk_size: int = 512,
    share_prompts: bool | None = None,
    cache_bytes: int = 2 * 1024**3,
    row_labels: Sequence[int | str] | None = None,
    row_columns: Sequence[str] | None = None,
    strategy: str | None = None,
    max_packed_length: int = 4096,
    keep_prefixes: Sequence[str | None] | None = None,
) -> SequenceScores:
    """Compute ``log p(response | prompt)`` for each pair with a causal LM, exactly and without waste.

    Tokenization, truncation and the computation are described in the module docstring and
    :func:`encode_pairs`. Runs on the model's device and dtype, without gradients (the model is put in
    eval mode for the call and restored after).

    Args:
        model: A transformers causal LM (``*ForCausalLM``), on any device, fp32/bf16/fp16.
        tokenizer: The model's own tokenizer.
        prompts: Prompt texts, already rendered (chat template applied, if any).
        responses: Response texts, one per prompt (repeat a prompt for each of its responses: it runs once).
        batch_size: Responses per forward pass (a packed row may hold more when one prompt has more).
        max_length: Cap on context + response tokens; ``None`` keeps everything.
        return_token_logps: Also return the per-token log-probs.
        show_progress: Progress bar; ``None`` shows it for 8 batches or more. Off with
            ``REAL_HUB_DISABLE_PROGRESS_BARS=1`` or when the ``real_hub`` logger's level is above INFO.
        chunk_size: Positions per LM-head call (bounds the ``[chunk, vocab]`` logits in memory).
        share_prompts: Compute a prompt once for all its responses (``True``: required, ``False``: never,
            ``None``: wherever the model allows it).
        cache_bytes: ``strategy="cache"``: memory for the prompts' key/value caches held at once (at least
            one batch's worth); more lets responses of more prompts be bucketed by length together.
        row_labels: How errors name the rows (default: their index).
        row_columns: How errors name each pair's response column (default: ``"response"``).
        strategy: How prompts are shared: ``"packed"`` (one row per prompt with its responses after it),
            ``"cache"`` (the prompt's key/value cache reused), ``"none"`` (prompt + response per row), or
            ``None``: packed where the model's attention allows it, else cache, else none.
        max_packed_length: ``strategy="packed"``: tokens per packed row; a prompt's responses that do not
            fit go to further rows (a row always holds at least one response).
        keep_prefixes: Per pair, a prefix of its prompt that truncation never cuts (e.g. the rendered
            system turn); ``None`` entries keep only the leading special tokens.

    Returns:
        :class:`SequenceScores` in input order.

    Raises:
        RowError: a pair (after ``max_length``) is longer than the model's context (its
            ``max_position_embeddings``), checked before the model runs.
    """
    pairs = encode_pairs(
        tokenizer,
        prompts,
        responses,
        max_length=max_length,
        row_labels=row_labels,
        keep_prefixes=keep_prefixes,
    )
    check_context_length(model, pairs, row_labels, max_length, row_columns)
    return score_encoded(
        model,
        pairs,
        batch_size=batch_size,
        chunk_size=chunk_size,
        share_prompts=share_prompts,
        cache_bytes=cache_bytes,
        return_token_logps=return_token_logps,
        show_progress=show_progress,
        strategy=strategy,
        max_packed_length=max_packed_length,
    )
