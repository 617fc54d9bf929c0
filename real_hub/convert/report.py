"""The report of one conversion: rows read, written and skipped."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ConversionReport:
    """What a conversion read, wrote and skipped.

    ``skipped`` counts the units that gave no output row, by reason: input rows for row-wise sources,
    posts for SHP (whose ``rows_in`` counts pair rows and ``rows_out`` posts). ``notes`` counts changes
    inside kept or skipped units, by reason: responses dropped from a candidate row (``empty_response``,
    ``unrated_response``), SHP comments seen with different scores (``inconsistent_score``, max kept).
    """

    source: str
    rows_in: int
    rows_out: int
    skipped: dict[str, int] = field(default_factory=dict)
    prompts: int = 0
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        """Total number of skipped units."""
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``n_skipped``."""
        return {**asdict(self), "n_skipped": self.n_skipped}
