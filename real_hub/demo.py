"""The embedded demo: a small candidates set written for this project, and the whole REAL job on it.

One builder, :func:`select_demo`, serves the demo job (:func:`run_demo` saves its configs) and the Space
(which browses them in memory).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from datasets import Dataset, DatasetDict

from .encoders import Encoder
from .hub.commit import check_output
from .hub.curated import CuratedSet, save_curated
from .hub.dataset_card import Provenance, Statistics
from .models import DEFAULT_EMBEDDER
from .real.embed import EmbedResponses
from .real.select import STRATEGIES, select_pairs
from .reporting import library_versions, summarize

logger = logging.getLogger(__name__)

DEMO_FILE = "demo.jsonl"


def load_demo() -> Dataset:
    """The embedded demo set: one row per prompt with ``responses`` and their ``scores``."""
    with resources.as_file(resources.files("real_hub") / "data" / DEMO_FILE) as path:
        return Dataset.from_json(str(path))


@dataclass
class DemoReport:
    """What the demo did: one summary row per strategy, where it wrote, and how long it took."""

    output_dir: Path
    prompts: int
    responses: int
    rows: list[dict[str, object]] = field(default_factory=list)
    seconds: float = 0.0


def select_demo(
    embedder: str | Encoder = DEFAULT_EMBEDDER,
    *,
    strategies: tuple[str, ...] = STRATEGIES,
    pairs_per_prompt: int = 1,
    seed: int = 0,
) -> dict[str, CuratedSet]:
    """Embed the demo set and select pairs with each strategy, in memory: one curated config per strategy.

    ``embedder`` is a model id or folder, or an :class:`~real_hub.encoders.Encoder` object (the Space's
    tests pass a tiny one). Each config's ``train`` split carries the provenance and statistics that
    :func:`run_demo` writes into the card.
    """
    candidates = load_demo()
    embed = EmbedResponses(embedder)
    embedded = candidates.map(
        embed, batched=True, features=embed.output_features(candidates.features), desc="Embedding responses"
    )
    name = embedder if isinstance(embedder, str) else type(embedder).__name__
    out = {}
    for strategy in strategies:
        pairs, sel = select_pairs(embedded, strategy, pairs_per_prompt=pairs_per_prompt, seed=seed)
        stats = Statistics(
            rows_in=len(candidates),
            rows_out={"train": len(pairs)},
            skipped=dict(sel.skipped),
            similarity=summarize(pairs["similarity"]),
        )
        prov = Provenance(
            source="real-hub demo (embedded)",
            converter="candidates",
            embedder=name,
            strategy=strategy,
            pairs_per_prompt=pairs_per_prompt,
            seed=seed,
            license="apache-2.0",
            versions=library_versions(),
        )
        out[strategy] = CuratedSet(strategy, DatasetDict({"train": pairs}), prov, stats)
    return out


def run_demo(
    output_dir: str | Path = "demo-output",
    *,
    embedder: str = DEFAULT_EMBEDDER,
    strategies: tuple[str, ...] = STRATEGIES,
    pairs_per_prompt: int = 1,
    seed: int = 0,
) -> DemoReport:
    """Embed the demo set, select pairs with each strategy and save one config per strategy."""
    start = time.perf_counter()
    check_output(output_dir)  # writable, with a readable card: before anything is embedded
    candidates = load_demo()
    report = DemoReport(Path(output_dir), len(candidates), sum(len(r) for r in candidates["responses"]))
    configs = select_demo(embedder, strategies=strategies, pairs_per_prompt=pairs_per_prompt, seed=seed)
    for strategy, curated in configs.items():
        pairs = curated.dataset["train"]
        save_curated(
            pairs,
            output_dir,
            strategy,
            provenance=curated.provenance,
            statistics=curated.statistics,
            overwrite=True,
        )
        report.rows.append(
            {
                "strategy": strategy,
                "pairs": len(pairs),
                "skipped": sum(curated.statistics.skipped.values()),
                "mean_similarity": curated.statistics.similarity.get("mean"),
                "mean_score_gap": _mean_gap(pairs),
            }
        )
    report.seconds = time.perf_counter() - start
    return report


def _mean_gap(pairs: Dataset) -> float | None:
    gaps = [
        c - r
        for c, r in zip(pairs["chosen_score"], pairs["rejected_score"])
        if c is not None and r is not None
    ]
    return sum(gaps) / len(gaps) if gaps else None
