""":class:`DedupReport`: what ``deduplicate`` and ``decontaminate`` removed, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class DuplicateGroup:
    """Rows whose prompts are duplicates of one another: the row kept and the rows removed for it.

    ``similarity[j]`` is the cosine similarity of ``removed[j]``'s prompt with the kept row's (1.0 for a copy
    of the kept prompt); ``exact[j]`` says whether ``removed[j]`` went in the exact stage (its normalised
    prompt equals an earlier-kept row's, in ``keep`` order) rather than the semantic one.
    """

    kept: int
    removed: list[int] = field(default_factory=list)
    similarity: list[float] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)

    @property
    def rows(self) -> list[int]:
        """The group's row ids, the kept row first."""
        return [self.kept, *self.removed]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)


@dataclass
class Match:
    """A row removed by :func:`~real_hub.decontaminate` and the ``against`` prompt it matched."""

    row: int
    against: str
    """The name of the ``against`` set (its path or Hub id and column, or ``<Dataset>``)."""
    against_row: int
    against_prompt: str
    similarity: float
    exact: bool
    """Whether the prompts are equal once normalised (else their cosine similarity reached the threshold)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)


@dataclass
class DedupReport:
    """What a deduplication or decontamination removed: counts, and each group or match by row id.

    ``rows_in - rows_out == exact + semantic`` always: every removed row is counted in one of the two.
    """

    operation: str
    """``"deduplicate"`` or ``"decontaminate"``."""
    column: str
    threshold: float
    embedder: str
    rows_in: int = 0
    rows_out: int = 0
    exact: int = 0
    """Rows removed because their normalised prompt equals a kept (or an ``against``) prompt."""
    semantic: int = 0
    """Rows removed because their prompt's cosine similarity reached ``threshold``."""
    keep: str | None = None
    against: list[str] = field(default_factory=list)
    against_prompts: int = 0
    """Distinct normalised prompts over all the ``against`` sets."""
    groups: list[DuplicateGroup] = field(default_factory=list)
    """Deduplication: every group with at least one removed row."""
    matches: list[Match] = field(default_factory=list)
    """Decontamination: every removed row, with what it matched."""
    index: str | None = None
    """The nearest-neighbour index searched (``None`` when there was nothing to search)."""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def removed(self) -> int:
        """Rows removed, exact and semantic."""
        return self.exact + self.semantic

    @property
    def removed_rows(self) -> list[int]:
        """The removed row ids, in order."""
        if self.operation == "decontaminate":
            return sorted(m.row for m in self.matches)
        return sorted(r for g in self.groups for r in g.removed)

    def by_against(self) -> dict[str, int]:
        """Decontamination: rows removed per ``against`` set (every set named, zero included)."""
        counts = dict.fromkeys(self.against, 0)
        for m in self.matches:
            counts[m.against] = counts.get(m.against, 0) + 1
        return counts

    def provenance(self) -> dict[str, Any]:
        """How the check was made, for the dataset card: threshold, embedder, ``keep`` or ``against``."""
        out: dict[str, Any] = {"column": self.column, "threshold": self.threshold, "embedder": self.embedder}
        if self.keep is not None:
            out["keep"] = self.keep
        if self.operation == "decontaminate":
            out["against"] = list(self.against)
        return out

    def statistics(self) -> dict[str, Any]:
        """The counts, for the dataset card."""
        out: dict[str, Any] = {
            "rows_in": self.rows_in,
            "exact": self.exact,
            "semantic": self.semantic,
            "rows_out": self.rows_out,
        }
        if self.operation == "deduplicate":
            out["duplicate_groups"] = len(self.groups)
        else:
            out["against_prompts"] = self.against_prompts
            out.update({f"from {name}": n for name, n in self.by_against().items()})
        return out

    def summary(self) -> str:
        """One line for people: what was removed, at which threshold, with which embedder."""
        if self.operation == "deduplicate":
            what = (
                f"{self.exact} exact copies and {self.semantic} near-duplicates removed "
                f"({len(self.groups)} groups, keep={self.keep})"
            )
        else:
            sets = ", ".join(f"{name}: {n}" for name, n in self.by_against().items())
            what = f"{self.exact} exact and {self.semantic} near matches removed ({sets})"
        return (
            f"{self.operation}: {self.rows_in} rows in, {what}, {self.rows_out} out "
            f"(threshold {self.threshold:g}, embedder {self.embedder})"
        )

    def to_dict(self, *, details: bool = True) -> dict[str, Any]:
        """A JSON-ready dictionary; ``details=False`` leaves out the groups and matches (counts only)."""
        out: dict[str, Any] = {
            "operation": self.operation,
            **self.provenance(),
            **self.statistics(),
            "removed": self.removed,
            "index": self.index,
            "seconds": dict(self.seconds),
        }
        if details:
            if self.operation == "deduplicate":
                out["groups"] = [g.to_dict() for g in self.groups]
            else:
                out["matches"] = [m.to_dict() for m in self.matches]
        return out
