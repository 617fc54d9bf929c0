"""Pairs of text to token ids: where a response starts, special tokens once, truncation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, RowError

logger = logging.getLogger(__name__)


@dataclass
class SequenceScores:
    """Log-probabilities of responses given their prompts, in input order.

    Attributes:
        logp: ``log p(response | prompt)``, summed over the response tokens (float64).
        n_tokens: Number of response tokens scored per pair.
        truncated: Whether the pair was cut to fit ``max_length``.
        tokens_cut: Tokens removed per pair by that cut (context and response together).
        token_logps: Per-token log-probs (float32 arrays), when asked for with ``return_token_logps``.
    """

    logp: np.ndarray
    n_tokens: np.ndarray
    truncated: np.ndarray
    token_logps: list[np.ndarray] | None = None
    tokens_cut: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.tokens_cut is None:
            self.tokens_cut = np.zeros(len(self.logp), dtype=np.int64)

    @property
    def mean(self) -> np.ndarray:
        """Per-token mean log-prob (``logp / n_tokens``)."""
        return self.logp / self.n_tokens

    def __len__(self) -> int:
        return len(self.logp)


@dataclass(frozen=True)
class EncodedPair:
    """Token ids of one pair: the context (prompt side, specials included) and the scored response ids.

    ``tokens_cut`` counts the tokens :func:`encode_pairs` removed to fit ``max_length`` (0 when none).
    """

    context: tuple[int, ...]
    response: tuple[int, ...]
    truncated: bool = False
    tokens_cut: int = 0


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


def _kept_tokens(tokenizer, text: str, context: list[int], dedouble) -> int:
    """How many leading ``context`` tokens spell ``text`` (a prefix of the prompt): the tokens both share.

    The last token of the prefix may merge with what follows it in the prompt; the shared run then stops
    one token short, which keeps the prefix's text whole up to that token.
    """
    ids = dedouble(list(tokenizer(text)["input_ids"]))
    n = 0
    while n < min(len(ids), len(context)) and ids[n] == context[n]:
        n += 1
    return n


def encode_pairs(
    tokenizer,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    max_length: int | None = None,
    row_labels: Sequence[int | str] | None = None,
    keep_prefixes: Sequence[str | None] | None = None,
) -> list[EncodedPair]:
    """Tokenize (prompt, response) pairs into context ids and response ids (rules in the module docstring).

    Truncation, when ``len(context) + len(response) > max_length``: the response is first cut from the
    right to at most ``max_length`` minus (the leading special tokens + one prompt token); then the
    context is cut from the left to fill the rest, keeping its leading special tokens (BOS) and, where
    ``keep_prefixes[i]`` is a prefix of ``prompts[i]`` (e.g. the rendered system turn holding a routed
    instruction), the tokens of that prefix: the oldest tokens after it are the ones cut. Such pairs are
    flagged ``truncated`` and the tokens removed are counted in ``tokens_cut``. A kept prefix that is not a
    prefix of its prompt raises ``ValueError``; one too long to leave room for a response token is a
    ``ConfigError``.

    Raises:
        RowError: A prompt or response is not a string, a response is empty or adds no token, or the
            context is empty (no BOS and the whole prompt merged into the response).
        ConfigError: ``max_length`` is too small to hold one context and one response token.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"expected as many prompts as responses, got {len(prompts)} and {len(responses)}")
    keeps = list(keep_prefixes) if keep_prefixes is not None else [None] * len(prompts)
    if len(keeps) != len(prompts):
        raise ValueError(f"expected one keep prefix per prompt, got {len(keeps)} for {len(prompts)}")
    for prompt, keep in zip(prompts, keeps, strict=True):
        if keep is not None and not prompt.startswith(keep):
            raise ValueError(f"the kept prefix {keep[:40]!r} does not start its prompt {prompt[:40]!r}")
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
            raise RowError(
                "the response adds no token to the prompt; expected a response of at least one token",
                row=labels[i],
                column="response",
            )
        if not context:
            raise RowError(
                "nothing to condition the first response token on: the tokenizer adds no BOS and the prompt "
                "is empty or merges entirely into the response's first token; expected a prompt of its own",
                row=labels[i],
                column="prompt",
            )
        truncated, cut = False, 0
        if max_length is not None and len(context) + len(response) > max_length:
            n_keep = len(prefix) if prefix and context[: len(prefix)] == prefix else int(context[0] == bos_id)
            if keeps[i]:
                n_keep = max(n_keep, _kept_tokens(tokenizer, keeps[i], context, dedouble))
            n_before = len(context) + len(response)
            context, response, truncated = _truncate(context, response, max_length, n_keep, labels[i])
            cut = n_before - len(context) - len(response)
        pairs.append(EncodedPair(tuple(context), tuple(response), truncated, cut))
    return pairs
