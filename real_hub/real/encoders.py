"""Encoders behind REAL's embeddings: the :class:`Encoder` protocol and its backends.

- :class:`SentenceTransformerEncoder`: a sentence-transformers model's sentence embedding;
- :class:`CausalLMEncoder` (the REAL paper's own choice): a causal LM's last-layer hidden states,
  mean-pooled over the response's tokens (special tokens such as BOS are seen but not pooled).

Any object with an ``encode(texts) -> ndarray`` method and a ``dim`` attribute stands in for a model,
which is how tests pass tiny ones (and how the embedding router reuses an embedder).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import RowError

logger = logging.getLogger(__name__)


@runtime_checkable
class Encoder(Protocol):
    """What ``EmbedResponses`` needs of a model: texts in, one vector per text out."""

    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``[len(texts), dim]`` array (need not be normalised)."""
        ...


class SentenceTransformerEncoder:
    """A ``SentenceTransformer`` behind the :class:`Encoder` protocol."""

    def __init__(self, model: Any, batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size
        dim = model.get_embedding_dimension()
        self.dim = int(dim) if dim is not None else int(model.encode(["x"]).shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in one call (the model batches internally)."""
        return np.asarray(
            self.model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            ),
            dtype=np.float32,
        )


class CausalLMEncoder:
    """Mean of a causal LM's last-layer hidden states over a response's own tokens."""

    def __init__(
        self, model: Any, tokenizer: Any, batch_size: int = 16, max_length: int | None = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.dim = int(model.config.hidden_size)
        self.truncated = 0
        self._warned = False
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def token_limit(self) -> int | None:
        """Tokens kept per response: ``max_length``, capped at the model's context (its position count)."""
        from ..logprobs.engine import context_length

        context = context_length(self.model)
        limits = [v for v in (self.max_length, context) if v is not None]
        return min(limits) if limits else None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in length-sorted batches; the result follows the input order.

        Responses longer than :meth:`token_limit` are cut from the right and counted in ``truncated``.
        """
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        limit = self.token_limit()
        encoded = self.tokenizer(list(texts), add_special_tokens=True, return_special_tokens_mask=True)
        if limit is not None:
            long = [k for k, ids in enumerate(encoded["input_ids"]) if len(ids) > limit]
            for k in long:  # cut from the right, as the tokenizer's truncation does
                encoded["input_ids"][k] = encoded["input_ids"][k][:limit]
                encoded["special_tokens_mask"][k] = encoded["special_tokens_mask"][k][:limit]
            if long:
                self.truncated += len(long)
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "CausalLMEncoder: %d response(s) longer than %d tokens were cut to fit (counted in "
                        "encoder.truncated; max_length sets the cap, the model's context bounds it)",
                        len(long),
                        limit,
                    )
        lengths = [len(ids) for ids in encoded["input_ids"]]
        order = np.argsort(lengths, kind="stable")[::-1]
        body = self.model.base_model
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(lengths[r] for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            attn = torch.zeros((len(rows), width), dtype=torch.long)
            pool = torch.zeros((len(rows), width), dtype=torch.float32)
            for k, r in enumerate(rows):
                n = lengths[r]
                ids[k, :n] = torch.tensor(encoded["input_ids"][r])
                attn[k, :n] = 1
                pool[k, :n] = 1.0 - torch.tensor(encoded["special_tokens_mask"][r], dtype=torch.float32)
            if bool((pool.sum(1) == 0).any()):
                bad = int(rows[int((pool.sum(1) == 0).nonzero()[0])])
                raise RowError(
                    f"expected a response with a token besides special tokens, found {texts[bad][:60]!r}"
                )
            with torch.inference_mode():
                hidden = body(input_ids=ids.to(device), attention_mask=attn.to(device)).last_hidden_state
            hidden = hidden.float().cpu()
            mean = (hidden * pool[..., None]).sum(1) / pool.sum(1, keepdim=True)
            out[rows] = mean.numpy()
        return out
