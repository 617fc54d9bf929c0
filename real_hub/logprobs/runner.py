"""The model split into body and LM head, response-only scoring in chunks, and batch helpers."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..progress import DISABLE_PROGRESS_ENV, progress_enabled  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)


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


class Runner:
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
        """Run the body on ``ids``; returns the last hidden states and the cache."""
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


def pad_to(rows: Sequence[Sequence[int]], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


def gather_rows(hidden: torch.Tensor, starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Rows ``hidden[j, starts[j] : starts[j] + counts[j]]`` of all ``j``, concatenated."""
    starts, counts = starts.to(hidden.device), counts.to(hidden.device)  # a model split over devices
    row = torch.repeat_interleave(torch.arange(len(counts), device=hidden.device), counts)
    offset = torch.arange(int(counts.sum()), device=hidden.device)
    offset = offset - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return hidden[row, starts[row] + offset]


def positions_from(ids: torch.Tensor) -> torch.Tensor:
    """Position ids ``0 .. length - 1`` for every row of ``ids``."""
    return torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)


def length_batches(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
