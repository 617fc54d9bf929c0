"""The prompt checks of :func:`real_hub.curate`: decontaminate, then deduplicate, before selection."""

from __future__ import annotations

from typing import Any

from datasets import Dataset

from .report import DedupReport


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
