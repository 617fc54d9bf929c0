"""The Space's *Duplicates* tab: a set's duplicate prompt groups, found by :func:`real_hub.deduplicate`."""

from __future__ import annotations

from typing import Any

import pandas as pd
from datasets import Dataset

from ..dedup.dedup import deduplicate
from ..schema import PROMPT
from .render import preview

DUPLICATE_COLUMNS = ["group", "row", "status", "similarity", "prompt"]
MAX_GROUPS = 200
"""Groups shown, the largest first."""


def duplicate_groups(
    ds: Dataset,
    threshold: float = 0.9,
    embedder: Any = None,
    *,
    column: str = PROMPT,
    max_groups: int = MAX_GROUPS,
) -> tuple[pd.DataFrame, str]:
    """The duplicate groups of ``ds``'s prompts as a table (one line per row, kept row first) and a summary.

    Each line says whether the row is the group's ``kept`` row, an ``exact copy`` (same prompt once case
    and whitespace are normalised) or a ``near-duplicate`` (cosine with the kept prompt at or above
    ``threshold``, shown in ``similarity``). ``embedder`` is :func:`~real_hub.deduplicate`'s.
    """
    _, report = deduplicate(ds, column, threshold=threshold, embedder=embedder)
    groups = sorted(report.groups, key=lambda g: (-len(g.removed), g.kept))[:max_groups]
    rows = [r for g in groups for r in g.rows]
    prompts = dict(zip(rows, ds.select(rows)[column])) if rows else {}
    lines = []
    for number, group in enumerate(groups):
        lines.append([number, group.kept, "kept", 1.0, preview(prompts[group.kept])])
        for row, sim, exact in zip(group.removed, group.similarity, group.exact):
            status = "exact copy" if exact else "near-duplicate"
            lines.append([number, row, status, round(sim, 4), preview(prompts[row])])
    shown = f"; the {len(groups)} largest shown" if len(groups) < len(report.groups) else ""
    return pd.DataFrame(lines, columns=DUPLICATE_COLUMNS), report.summary() + shown
