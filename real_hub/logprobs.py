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

from __future__ import annotations

import inspect
import logging
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import ConfigError, RowError

logger = logging.getLogger(__name__)

#: Environment variable that turns every real-hub progress bar off when set to ``1``/``true``.
DISABLE_PROGRESS_ENV = "REAL_HUB_DISABLE_PROGRESS_BARS"
_MIN_BATCHES_FOR_PROGRESS = 8


@dataclass
class SequenceScores:
    """Log-probabilities of responses given their prompts, in input order.

    Attributes:
        logp: ``log p(response | prompt)``, summed over the response tokens (float64).
        n_tokens: Number of response tokens scored per pair.
        truncated: Whether the pair was cut to fit ``max_length``.
        token_logps: Per-token log-probs (float32 arrays), when asked for with ``return_token_logps``.
    """

    logp: np.ndarray
    n_tokens: np.ndarray
    truncated: np.ndarray
    token_logps: list[np.ndarray] | None = None

    @property
    def mean(self) -> np.ndarray:
        """Per-token mean log-prob (``logp / n_tokens``)."""
        return self.logp / self.n_tokens

    def __len__(self) -> int:
        return len(self.logp)


@dataclass(frozen=True)
class EncodedPair:
    """Token ids of one pair: the context (prompt side, specials included) and the scored response ids."""

    context: tuple[int, ...]
    response: tuple[int, ...]
    truncated: bool = False


# ----------------------------------------------------------------------------------------------- tokenizing


def _added_specials(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer adds in front of and after a text by default (e.g. ``[BOS]``, ``[EOS]``)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    logger.warning(
        "Could not tell which special tokens %s adds; truncation keeps none.", type(tokenizer).__name__
    )
    return [], []


def _truncate(
    context: list[int], response: list[int], max_length: int, n_keep: int, label: int | str
) -> tuple[list[int], list[int], bool]:
    if len(context) + len(response) <= max_length:
        return context, response, False
    keep = min(n_keep, len(context))
    min_context = min(len(context), keep + 1)
    max_response = max_length - min_context
    if max_response < 1:
        raise ConfigError(
            f"max_length={max_length} leaves no room for a response token after {min_context} context "
            f"token(s) (row {label}); use max_length >= {min_context + 1}"
        )
    response = response[:max_response]
    budget = max_length - len(response)
    if len(context) > budget:
        context = context[:keep] + context[len(context) - (budget - keep) :]
    return context, response, True


def encode_pairs(
    tokenizer,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    max_length: int | None = None,
    row_labels: Sequence[int | str] | None = None,
) -> list[EncodedPair]:
    """Tokenize (prompt, response) pairs into context ids and response ids (rules in the module docstring).

    Truncation, when ``len(context) + len(response) > max_length``: the response is first cut from the
    right to at most ``max_length`` minus (the leading special tokens + one prompt token); then the
    context is cut from the left to fill the rest, keeping its leading special tokens (BOS). Such pairs
    are flagged ``truncated``.

    Raises:
        RowError: A prompt or response is not a string, a response is empty or adds no token, or the
            context is empty (no BOS and the whole prompt merged into the response).
        ConfigError: ``max_length`` is too small to hold one context and one response token.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"expected as many prompts as responses, got {len(prompts)} and {len(responses)}")
    if max_length is not None and max_length < 2:
        raise ConfigError(
            f"max_length must be at least 2 (one context and one response token), got {max_length}"
        )
    labels = list(row_labels) if row_labels is not None else list(range(len(prompts)))
    for i, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        for value, column in ((prompt, "prompt"), (response, "response")):
            if not isinstance(value, str):
                raise RowError(
                    f"expected a string, found {type(value).__name__}", row=labels[i], column=column
                )
        if response == "":
            raise RowError(
                "expected a non-empty response, found an empty string", row=labels[i], column="response"
            )
    if not prompts:
        return []

    prefix, _ = _added_specials(tokenizer)
    bos_id = getattr(tokenizer, "bos_token_id", None)

    def dedouble(ids: list[int]) -> list[int]:
        # The text itself started with the added prefix (a rendered chat template): keep a single copy.
        if prefix and ids[len(prefix) : 2 * len(prefix)] == prefix:
            return ids[len(prefix) :]
        return ids

    unique_prompts = list(dict.fromkeys(prompts))
    prompt_ids = dict(zip(unique_prompts, tokenizer(unique_prompts)["input_ids"], strict=True))
    full_ids = tokenizer([p + r for p, r in zip(prompts, responses, strict=True)])["input_ids"]

    pairs = []
    for i, (prompt, full) in enumerate(zip(prompts, full_ids, strict=True)):
        p_ids, f_ids = dedouble(list(prompt_ids[prompt])), dedouble(list(full))
        start = 0
        limit = min(len(p_ids), len(f_ids))
        while start < limit and p_ids[start] == f_ids[start]:
            start += 1
        context, response = f_ids[:start], f_ids[start:]
        if not response:
            raise RowError("the response adds no token to the prompt", row=labels[i], column="response")
        if not context:
            raise RowError(
                "nothing to condition the first response token on: the tokenizer adds no BOS and the prompt "
                "is empty or merges entirely into the response's first token",
                row=labels[i],
                column="prompt",
            )
        truncated = False
        if max_length is not None:
            n_keep = len(prefix) if prefix and context[: len(prefix)] == prefix else int(context[0] == bos_id)
            context, response, truncated = _truncate(context, response, max_length, n_keep, labels[i])
        pairs.append(EncodedPair(tuple(context), tuple(response), truncated))
    return pairs


# ------------------------------------------------------------------------------------------------- the model


def _progress_enabled(show_progress: bool | None, n_batches: int) -> bool:
    """On when asked or for many batches; off by env var or a ``real_hub`` log level above INFO."""
    if os.environ.get(DISABLE_PROGRESS_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if logging.getLogger("real_hub").level > logging.INFO:
        return False
    return show_progress if show_progress is not None else n_batches >= _MIN_BATCHES_FOR_PROGRESS


def _logits_transform(model) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Post-processing some architectures apply after the LM head (softcapping, scaling), in fp32."""
    config = model.config
    cap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(model, "logit_scale", None)  # Cohere
    divide = getattr(config, "logits_scaling", None)  # Granite
    steps = []
    if cap:
        steps.append(lambda x: torch.tanh(x / cap) * cap)
    if isinstance(scale, (int, float)) and scale != 1:
        steps.append(lambda x: x * scale)
    if isinstance(divide, (int, float)) and divide != 1:
        steps.append(lambda x: x / divide)
    if not steps:
        return None

    def apply(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return apply


class _Runner:
    """The model split into body and head, with the forward-call details of the installed transformers."""

    def __init__(self, model, chunk_size: int) -> None:
        self.body = model.base_model
        self.head = model.get_output_embeddings()
        if self.body is model or self.head is None:
            raise ConfigError(
                f"{type(model).__name__} is not a causal LM with a separate body and LM head "
                "(expected e.g. a *ForCausalLM model from transformers)"
            )
        self.device = next(model.parameters()).device
        self.chunk_size = chunk_size
        self.transform = _logits_transform(model)
        params = inspect.signature(self.body.forward).parameters
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.x
        self.can_share = self._plain_dynamic_cache(model.config)
        self.attn = getattr(model.config, "_attn_implementation", None)
        dtype = getattr(model, "dtype", None)  # a PreTrainedModel's first floating-point parameter dtype
        self.dtype = dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else torch.float32

    def _plain_dynamic_cache(self, config) -> bool:
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        if getattr(config, "is_encoder_decoder", False):
            return False
        try:
            layers = DynamicCache(config=config).layers
        except (AttributeError, KeyError, TypeError, ValueError) as err:  # an unusual config: no sharing
            logger.info("No prompt sharing for %s: %s", type(config).__name__, err)
            return False
        return all(type(layer) is DynamicLayer for layer in layers)

    def forward(self, ids, mask, positions, cache=None, use_cache=True):
        kwargs = {self.cache_kwarg: cache} if cache is not None else {}
        out = self.body(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=use_cache, **kwargs
        )
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = getattr(out, "past_key_values", None)
        return out.last_hidden_state, new_cache

    def cache_bytes_per_token(self, token_id: int) -> int:
        """Size of one token's keys and values over all layers, measured on a one-token forward."""
        ids = torch.tensor([[token_id]], device=self.device)
        _, cache = self.forward(ids, torch.ones_like(ids), torch.zeros_like(ids))
        return max(
            1, sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
        )

    def token_logps(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Log-probs (fp32) of ``targets`` from ``hidden`` rows, LM head on ``chunk_size`` rows at a time."""
        out = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
        for start in range(0, len(targets), self.chunk_size):
            stop = start + self.chunk_size
            logits = self.head(hidden[start:stop]).float()
            if self.transform is not None:
                logits = self.transform(logits)
            picked = logits.gather(1, targets[start:stop, None].to(logits.device)).squeeze(1)
            out[start:stop] = picked - torch.logsumexp(logits, dim=-1)
        return out


def _pad(rows: Sequence[Sequence[int]], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad id lists: ids (pad 0, masked), attention mask, lengths; built on the CPU, moved once."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    ids = np.zeros((len(rows), int(lengths.max())), dtype=np.int64)
    for j, r in enumerate(rows):
        ids[j, : len(r)] = r
    mask = np.arange(ids.shape[1])[None, :] < lengths[:, None]
    return (
        torch.from_numpy(ids).to(device),
        torch.from_numpy(mask.astype(np.int64)).to(device),
        torch.from_numpy(lengths).to(device),
    )


def _gather(hidden: torch.Tensor, starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Rows ``hidden[j, starts[j] : starts[j] + counts[j]]`` of all ``j``, concatenated."""
    starts, counts = starts.to(hidden.device), counts.to(hidden.device)  # a model split over devices
    row = torch.repeat_interleave(torch.arange(len(counts), device=hidden.device), counts)
    offset = torch.arange(int(counts.sum()), device=hidden.device)
    offset = offset - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return hidden[row, starts[row] + offset]


def _positions(ids: torch.Tensor) -> torch.Tensor:
    """Position ids ``0 .. length - 1`` for every row of ``ids``."""
    return torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _score_full(
    runner: _Runner, pairs: list[EncodedPair], order: list[int], batch_size: int, sink, bar
) -> None:
    """Prompt + response in one pass per batch (no sharing)."""
    order = sorted(
        order,
        key=lambda i: (len(pairs[i].context) + len(pairs[i].response), pairs[i].context, pairs[i].response),
    )
    for batch in _batches(order, batch_size):
        ids, mask, lengths = _pad([pairs[i].context + pairs[i].response for i in batch], runner.device)
        hidden, _ = runner.forward(ids, mask, _positions(ids))
        n_ctx = torch.tensor([len(pairs[i].context) for i in batch], device=runner.device)
        counts = lengths - n_ctx
        rows = _gather(hidden, n_ctx - 1, counts)
        targets = _gather(ids[:, :, None], n_ctx, counts).squeeze(1)
        sink(batch, runner.token_logps(rows, targets))
        bar.update(1)


@dataclass
class _Window:
    """Context batches whose caches are kept together, and the response batches that continue from them."""

    contexts: list[list[tuple[int, ...]]]  # batches of unique contexts
    responses: list[list[tuple[int, int, int]]]  # batches of (pair index, context batch, row in it)


def _shared_plan(
    pairs: list[EncodedPair], order: list[int], batch_size: int, cache_tokens: int
) -> list[_Window]:
    """Group contexts into length-bucketed batches and windows; bucket each window's responses by length."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in order:
        groups.setdefault(pairs[i].context, []).append(i)
    windows: list[_Window] = []
    held = cache_tokens  # padded context tokens in the last window: start a new one at once
    for ctx_batch in _batches(sorted(groups, key=lambda c: (len(c), c)), batch_size):
        size = len(ctx_batch) * len(ctx_batch[-1])  # sorted by length: the last one is the longest
        if held + size > cache_tokens:
            windows.append(_Window([], []))
            held = 0
        windows[-1].contexts.append(ctx_batch)
        held += size
    for window in windows:
        members = [
            (i, b, k)
            for b, batch in enumerate(window.contexts)
            for k, c in enumerate(batch)
            for i in groups[c]
        ]
        members.sort(key=lambda m: (len(pairs[m[0]].response), pairs[m[0]].response, m[1:]))
        window.responses = [sorted(batch, key=lambda m: m[1:]) for batch in _batches(members, batch_size)]
    return windows


def _rows_of(t: torch.Tensor, rows: torch.Tensor, width: int) -> torch.Tensor:
    """``t[rows]`` of a ``[batch, heads, length, dim]`` cache tensor, cut or right-padded to ``width``."""
    t = t.index_select(0, rows)[:, :, :width]
    return torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[2])) if t.shape[2] < width else t


def _score_shared(runner: _Runner, pairs: list[EncodedPair], plan: list[_Window], sink, bar) -> None:
    """Each context once (its key/value cache kept), then its responses continuing from the cache."""
    from transformers import DynamicCache

    device = runner.device
    for window in plan:
        caches, lasts, lengths = [], [], []
        for ctx_batch in window.contexts:
            ids, mask, ctx_len = _pad(ctx_batch, device)
            hidden, cache = runner.forward(ids, mask, _positions(ids))
            last = _gather(hidden, ctx_len - 1, torch.ones_like(ctx_len))  # predicts response token 0
            lasts.append(last)
            caches.append([(layer.keys, layer.values) for layer in cache.layers])
            lengths.append(ctx_len)
            del hidden, cache
            bar.update(1)
        for batch in window.responses:
            items = [i for i, _, _ in batch]
            sources = sorted({b for _, b, _ in batch})  # rows are grouped by source batch, in this order
            rows = {b: torch.tensor([k for _, bb, k in batch if bb == b], device=device) for b in sources}
            ctx_len = torch.cat([lengths[b][rows[b]] for b in sources])
            width = int(ctx_len.max())

            past = DynamicCache(
                ddp_cache_data=[
                    tuple(
                        torch.cat([_rows_of(caches[b][j][kv], rows[b], width) for b in sources])
                        for kv in (0, 1)
                    )
                    for j in range(len(caches[0]))
                ]
            )
            r_ids, r_mask, r_len = _pad([pairs[i].response for i in items], device)
            ctx_mask = (torch.arange(width, device=device)[None, :] < ctx_len[:, None]).long()
            positions = ctx_len[:, None] + torch.arange(r_ids.shape[1], device=device)[None, :]
            r_hidden, _ = runner.forward(r_ids, torch.cat([ctx_mask, r_mask], dim=1), positions, cache=past)
            del past
            # Position k of ``states`` predicts response token k.
            last = torch.cat([lasts[b][rows[b].to(lasts[b].device)] for b in sources]).to(r_hidden.device)
            states = torch.cat([last[:, None, :], r_hidden[:, :-1]], dim=1)
            zeros = torch.zeros_like(r_len)
            sink(
                items,
                runner.token_logps(
                    _gather(states, zeros, r_len), _gather(r_ids[:, :, None], zeros, r_len).squeeze(1)
                ),
            )
            bar.update(1)


# ------------------------------------------------------------------------------------------ packed prompts

#: Attention implementations that take a custom 4D mask ``[batch, 1, query, key]`` as it is: ``sdpa`` a
#: boolean one (True = attend), ``eager`` a float one added to the scores (0 or the dtype's minimum).
_MASK_FORMATS = ("sdpa", "eager")
STRATEGIES = ("packed", "cache", "none")
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class _Pack:
    """One packed row: a context followed by some of its responses (pair indices, in row order)."""

    context: tuple[int, ...]
    members: list[int]
    length: int


def _pack_plan(
    pairs: list[EncodedPair], order: list[int], batch_size: int, max_packed: int
) -> list[list[_Pack]]:
    """Each context's responses packed after it (split past ``max_packed`` tokens); rows bucketed by length.

    A batch holds at most ``batch_size`` responses (at least one row). Depends on contents, not order.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in order:
        groups.setdefault(pairs[i].context, []).append(i)
    packs: list[_Pack] = []
    for context in sorted(groups, key=lambda c: (len(c), c)):
        pack = None
        for i in sorted(groups[context], key=lambda i: (len(pairs[i].response), pairs[i].response)):
            n = len(pairs[i].response)
            if pack is None or pack.length + n > max_packed:
                pack = _Pack(context, [], len(context))
                packs.append(pack)
            pack.members.append(i)
            pack.length += n
    packs.sort(key=lambda p: (p.length, p.context, [pairs[i].response for i in p.members]))
    batches: list[list[_Pack]] = []
    held = batch_size
    for pack in packs:
        if held + len(pack.members) > batch_size:
            batches.append([])
            held = 0
        batches[-1].append(pack)
        held += len(pack.members)
    return batches


def _packed_mask(segments: torch.Tensor, attn: str, dtype: torch.dtype) -> torch.Tensor:
    """``[batch, 1, width, width]`` mask: causal within the context and within each response.

    ``segments``: 0 for context tokens, ``j + 1`` for response ``j``'s tokens, -1 for padding. A response
    sees the context and its own earlier tokens, never another response; a padding position sees itself
    (a fully masked row would give NaN in sdpa).
    """
    idx = torch.arange(segments.shape[1], device=segments.device)
    q, k = segments[:, :, None], segments[:, None, :]
    allowed = (idx[:, None] >= idx[None, :]) & (k >= 0) & ((k == 0) | (k == q))
    allowed |= (q < 0) & (idx[:, None] == idx[None, :])
    allowed = allowed[:, None]
    if attn == "sdpa":
        return allowed
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)


def _packed_forward(
    runner: _Runner, pairs: list[EncodedPair], batch: list[_Pack]
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """One forward over a batch of packs.

    Returns the hidden states that predict each response token, the tokens they predict, and the pairs
    they belong to (``items``, row by row, in that order).
    """
    width = max(p.length for p in batch)
    ids = np.zeros((len(batch), width), dtype=np.int64)
    segments = np.full((len(batch), width), -1, dtype=np.int64)
    positions = np.zeros((len(batch), width), dtype=np.int64)
    rows, cols, targets, items = [], [], [], []
    for r, pack in enumerate(batch):
        c = len(pack.context)
        ids[r, :c], segments[r, :c], positions[r, :c] = pack.context, 0, np.arange(c)
        start = c
        for j, i in enumerate(pack.members):
            response = pairs[i].response
            stop = start + len(response)
            ids[r, start:stop], segments[r, start:stop] = response, j + 1
            positions[r, start:stop] = np.arange(c, c + len(response))  # as if right after the context
            rows.append(np.full(len(response), r))
            cols.append(np.concatenate([[c - 1], np.arange(start, stop - 1)]))  # each predicts the next
            targets.append(response)
            items.append(i)
            start = stop
    device = runner.device
    hidden, _ = runner.forward(
        torch.from_numpy(ids).to(device),
        _packed_mask(torch.from_numpy(segments).to(device), runner.attn, runner.dtype),
        torch.from_numpy(positions).to(device),
        use_cache=False,
    )
    picked = hidden[
        torch.from_numpy(np.concatenate(rows)).to(hidden.device),
        torch.from_numpy(np.concatenate(cols)).to(hidden.device),
    ]
    return picked, torch.from_numpy(np.concatenate(targets)).to(hidden.device), items


def _score_packed(runner: _Runner, pairs: list[EncodedPair], plan: list[list[_Pack]], sink, bar) -> None:
    """One row per pack: the context once, then its responses, each attending to the context and itself."""
    for batch in plan:
        states, targets, items = _packed_forward(runner, pairs, batch)
        sink(items, runner.token_logps(states, targets))
        bar.update(1)


def _packing_checked(model, runner: _Runner) -> bool:
    """Whether packed rows give the hidden states of plain rows on this model (once per model and dtype).

    Catches architectures that ignore a custom 4D mask or the position ids. Needs inference mode.
    """
    key = (runner.attn, runner.dtype)
    known = _CHECKED.setdefault(model, {})
    if key not in known:
        vocab = getattr(runner.head, "out_features", None) or model.config.vocab_size
        t = [(7 * k + 3) % vocab for k in range(8)]
        probe = [
            EncodedPair((t[0], t[1], t[2]), (t[3], t[4])),
            EncodedPair((t[0], t[1], t[2]), (t[5], t[6], t[7])),
            EncodedPair((t[1], t[2]), (t[4],)),
        ]
        got, _, items = _packed_forward(
            runner, probe, [p for b in _pack_plan(probe, [0, 1, 2], 8, 64) for p in b]
        )
        ids, mask, _ = _pad([p.context + p.response for p in probe], runner.device)
        hidden, _ = runner.forward(ids, mask, _positions(ids), use_cache=False)
        want = torch.cat([hidden[i, len(probe[i].context) - 1 : -1][: len(probe[i].response)] for i in items])
        scale = float(want.abs().max()) + 1
        diff = float((got.float() - want.float()).abs().max()) / scale
        tol = 1e-4 if runner.dtype == torch.float32 else 5e-2
        known[key] = bool(np.isfinite(diff) and diff <= tol)
        if not known[key]:
            logger.info(
                "No packed prompts for %s (attention %s): packed rows differ by %.3g (relative)",
                type(model).__name__,
                runner.attn,
                diff,
            )
    return known[key]


def _strategy(runner: _Runner, model, strategy: str | None, share_prompts: bool | None) -> str:
    """The path to take: the one asked for, or the fastest the model allows (packed > cache > none)."""
    if strategy is not None and strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)} or None, got {strategy!r}")
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
    packable = runner.can_share and runner.attn in _MASK_FORMATS and _packing_checked(model, runner)
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
    if n == 0:
        return SequenceScores(sums, n_tokens, truncated, [] if return_token_logps else None)

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
            runner = _Runner(model, chunk_size)
            path = _strategy(runner, model, strategy, share_prompts)
            logger.debug("Scoring %d pairs with strategy %r", n, path)
            single, packs, plan = list(range(n)), [], []
            if path == "packed":
                single, packs = [], _pack_plan(pairs, list(range(n)), batch_size, max_packed_length)
            elif path == "cache":
                counts: dict[tuple[int, ...], int] = {}
                for p in pairs:
                    counts[p.context] = counts.get(p.context, 0) + 1
                shared = [i for i, p in enumerate(pairs) if share_prompts or counts[p.context] > 1]
                single = [i for i, p in enumerate(pairs) if not share_prompts and counts[p.context] == 1]
                cache_tokens = 1  # only matters (and is measured) with more than one batch of prompts
                if len({pairs[i].context for i in shared}) > batch_size:
                    cache_tokens = cache_bytes // runner.cache_bytes_per_token(pairs[shared[0]].context[0])
                plan = _shared_plan(pairs, shared, batch_size, cache_tokens)
            n_batches = (
                -(-len(single) // batch_size)
                + len(packs)
                + sum(len(w.contexts) + len(w.responses) for w in plan)
            )
            bar = tqdm(
                total=n_batches,
                desc="Scoring sequences",
                unit="batch",
                disable=not _progress_enabled(show_progress, n_batches),
            )
            if single:
                _score_full(runner, pairs, single, batch_size, sink, bar)
            if packs:
                _score_packed(runner, pairs, packs, sink, bar)
            if plan:
                _score_shared(runner, pairs, plan, sink, bar)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    return SequenceScores(sums, n_tokens, truncated, list(token_logps) if return_token_logps else None)


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
    strategy: str | None = None,
    max_packed_length: int = 4096,
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
        strategy: How prompts are shared: ``"packed"`` (one row per prompt with its responses after it),
            ``"cache"`` (the prompt's key/value cache reused), ``"none"`` (prompt + response per row), or
            ``None``: packed where the model's attention allows it, else cache, else none.
        max_packed_length: ``strategy="packed"``: tokens per packed row; a prompt's responses that do not
            fit go to further rows (a row always holds at least one response).

    Returns:
        :class:`SequenceScores` in input order.
    """
    pairs = encode_pairs(tokenizer, prompts, responses, max_length=max_length, row_labels=row_labels)
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


__all__ = ["EncodedPair", "SequenceScores", "encode_pairs", "score_encoded", "score_sequences"]
