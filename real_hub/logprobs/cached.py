"""The plain path (prompt + response per row) and the key/value-cache path (a prompt's cache reused)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .encoding import EncodedPair
from .runner import Runner, gather_rows, length_batches, pad_to, positions_from


def score_full(
    runner: Runner, pairs: list[EncodedPair], order: list[int], batch_size: int, sink, bar
) -> None:
    """Prompt + response in one pass per batch (no sharing)."""
    order = sorted(
        order,
        key=lambda i: (len(pairs[i].context) + len(pairs[i].response), pairs[i].context, pairs[i].response),
    )
    for batch in length_batches(order, batch_size):
        ids, mask, lengths = pad_to([pairs[i].context + pairs[i].response for i in batch], runner.device)
        hidden, _ = runner.forward(ids, mask, positions_from(ids))
        n_ctx = torch.tensor([len(pairs[i].context) for i in batch], device=runner.device)
        counts = lengths - n_ctx
        rows = gather_rows(hidden, n_ctx - 1, counts)
        targets = gather_rows(ids[:, :, None], n_ctx, counts).squeeze(1)
        sink(batch, runner.token_logps(rows, targets))
        bar.update(1)


@dataclass
class _Window:
    """Context batches whose caches are kept together, and the response batches that continue from them."""

    contexts: list[list[tuple[int, ...]]]  # batches of unique contexts
    responses: list[list[tuple[int, int, int]]]  # batches of (pair index, context batch, row in it)


def shared_plan(
    pairs: list[EncodedPair], order: list[int], batch_size: int, cache_tokens: int
) -> list[_Window]:
    """Group contexts into length-bucketed batches and windows; bucket each window's responses by length."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in order:
        groups.setdefault(pairs[i].context, []).append(i)
    windows: list[_Window] = []
    held = cache_tokens  # padded context tokens in the last window: start a new one at once
    for ctx_batch in length_batches(sorted(groups, key=lambda c: (len(c), c)), batch_size):
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
        window.responses = [
            sorted(batch, key=lambda m: m[1:]) for batch in length_batches(members, batch_size)
        ]
    return windows


def _rows_of(t: torch.Tensor, rows: torch.Tensor, width: int) -> torch.Tensor:
    """``t[rows]`` of a ``[batch, heads, length, dim]`` cache tensor, cut or right-padded to ``width``."""
    t = t.index_select(0, rows)[:, :, :width]
    return torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[2])) if t.shape[2] < width else t


def score_shared(runner: Runner, pairs: list[EncodedPair], plan: list[_Window], sink, bar) -> None:
    """Each context once (its key/value cache kept), then its responses continuing from the cache."""
    from transformers import DynamicCache

    device = runner.device
    for window in plan:
        caches, lasts, lengths = [], [], []
        for ctx_batch in window.contexts:
            ids, mask, ctx_len = pad_to(ctx_batch, device)
            hidden, cache = runner.forward(ids, mask, positions_from(ids))
            last = gather_rows(hidden, ctx_len - 1, torch.ones_like(ctx_len))  # predicts response token 0
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
            r_ids, r_mask, r_len = pad_to([pairs[i].response for i in items], device)
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
                    gather_rows(states, zeros, r_len), gather_rows(r_ids[:, :, None], zeros, r_len).squeeze(1)
                ),
            )
            bar.update(1)
