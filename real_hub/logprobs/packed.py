"""The packed path: a prompt and its responses in one row, with a 4D mask and restarting positions."""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from .encoding import EncodedPair
from .runner import Runner, pad_to, positions_from

logger = logging.getLogger(__name__)


#: Attention implementations that take a custom 4D mask ``[batch, 1, query, key]`` as it is: ``sdpa`` a
#: boolean one (True = attend), ``eager`` a float one added to the scores (0 or the dtype's minimum).
MASK_FORMATS = ("sdpa", "eager")
SCORING_PATHS = ("packed", "cache", "none")
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class _Pack:
    """One packed row: a context followed by some of its responses (pair indices, in row order)."""

    context: tuple[int, ...]
    members: list[int]
    length: int


def pack_plan(
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
    runner: Runner, pairs: list[EncodedPair], batch: list[_Pack]
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


def score_packed(runner: Runner, pairs: list[EncodedPair], plan: list[list[_Pack]], sink, bar) -> None:
    """One row per pack: the context once, then its responses, each attending to the context and itself."""
    for batch in plan:
        states, targets, items = _packed_forward(runner, pairs, batch)
        sink(items, runner.token_logps(states, targets))
        bar.update(1)


def packing_checked(model, runner: Runner) -> bool:
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
            runner, probe, [p for b in pack_plan(probe, [0, 1, 2], 8, 64) for p in b]
        )
        ids, mask, _ = pad_to([p.context + p.response for p in probe], runner.device)
        hidden, _ = runner.forward(ids, mask, positions_from(ids), use_cache=False)
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
