"""The prompt checks of :func:`real_hub.curate`: decontaminate, then deduplicate, before selection."""

from __future__ import annotations

import logging
from typing import Any

from datasets import Dataset

from ..errors import ConfigError
from .dedup import KEEP, check_threshold
from .report import DedupReport

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.9
"""The threshold of ``--dedup`` given without a value."""


def check_options(opts: Any) -> None:
    """Refuse prompt-check options out of range, or given without ``dedup``/``decontaminate``."""
    if opts.dedup is not None:
        check_threshold(opts.dedup, "dedup (--dedup THRESHOLD)")
    if isinstance(opts.decontaminate, str):
        opts.decontaminate = [opts.decontaminate]
    if opts.decontaminate is not None and not len(opts.decontaminate):
        opts.decontaminate = None
    check_threshold(opts.decontaminate_threshold, "decontaminate_threshold (--decontaminate-threshold)")
    if opts.dedup_keep not in KEEP:
        raise ConfigError(
            f"dedup_keep (--dedup-keep) must be one of {', '.join(map(repr, KEEP))}, got {opts.dedup_keep!r}"
        )
    active = opts.dedup is not None or opts.decontaminate is not None
    if not active:
        changed = [
            name
            for name, default in (
                ("decontaminate_threshold", DEFAULT_THRESHOLD),
                ("dedup_keep", "first"),
                ("dedup_embedder", None),
            )
            if getattr(opts, name) != default
        ]
        if changed:
            flags = ", ".join(f"{n} (--{n.replace('_', '-')})" for n in changed)
            raise ConfigError(f"{flags} only apply with dedup (--dedup) or decontaminate (--decontaminate)")
    if active and opts.engine != "datasets":
        raise ConfigError(
            "dedup and decontaminate run with the default engine only (engine='datasets') for now"
        )


def prompt_checks(data: Dataset, opts: Any) -> tuple[Dataset, DedupReport | None, DedupReport | None]:
    """Drop leaked prompts (``opts.decontaminate``), then duplicate prompts (``opts.dedup``).

    Returns the data left and the two reports (``None`` for a check not asked for).
    """
    from ..real.embed import EmbedResponses
    from .decontaminate import decontaminate
    from .dedup import deduplicate
    from .embedding import prompt_embedder

    contamination = duplicates = None
    embed: EmbedResponses = prompt_embedder(opts.dedup_embedder)  # one model for both checks
    if opts.decontaminate is not None:
        data, contamination = decontaminate(
            data, opts.decontaminate, threshold=opts.decontaminate_threshold, embedder=embed
        )
    if opts.dedup is not None:
        data, duplicates = deduplicate(data, threshold=opts.dedup, embedder=embed, keep=opts.dedup_keep)
    return data, duplicates, contamination


def summary_rows(duplicates: DedupReport | None, contamination: DedupReport | None) -> list[dict[str, Any]]:
    """The command line's table rows of the two checks: step, rows in, rows out, rows removed."""
    rows = []
    for report, step in ((contamination, "decontaminate"), (duplicates, "dedup")):
        if report is not None:
            rows.append(
                {
                    "step": f"{step} ({report.threshold:g})",
                    "in": report.rows_in,
                    "out": report.rows_out,
                    "skipped": report.removed,
                }
            )
    return rows
