"""Dataset cards for curated preference sets: provenance and statistics, one section per config.

The card's YAML holds the ``configs`` that ``load_dataset(repo, config)`` reads, the Hub's tags, and a
``real_hub`` block with each config's provenance and statistics in machine-readable form (what
:func:`real_hub.load_curated` parses back). The body repeats them for people, one marked section per
config, so writing another config keeps the sections already there.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from ..options import NO_SELECTION
from ..reporting import markdown_cell

TAGS = ["dpo", "preference", "real-hub"]
TEMPLATES = Path(__file__).parent / "templates"
EXAMPLE_MODEL = "Qwen/Qwen3-0.6B"
"""The model the card's training lines name when the set records no reference model."""
_SECTION = re.compile(
    r"<!-- real-hub:config:(?P<name>[^ ]+):start -->.*?<!-- real-hub:config:(?P=name):end -->\n?", re.S
)


@dataclass
class Provenance:
    """How a curated config was made."""

    source: str | None = None
    source_revision: str | None = None
    limit: int | None = None
    """Only the source's first ``limit`` rows were read (``real-hub curate --limit N``)."""
    converter: str | None = None
    embedder: str | None = None
    embedder_revision: str | None = None
    reward_models: dict[str, str] | None = None
    normalize: str | None = None
    generator: dict[str, Any] | None = None
    """For prompt-only sources: the model that generated the candidates and its sampling parameters."""
    strategy: str | None = None
    pairs_per_prompt: int | None = None
    budget: float | None = None
    seed: int | None = None
    license: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    reference: dict[str, Any] | None = None
    """What the ``ref_chosen_logps``/``ref_rejected_logps`` columns belong to: ``model``, ``revision``,
    ``dtype`` (precision), TRL's ``max_length``/``truncation_mode`` (see ``add_reference_logps``)."""
    dedup: dict[str, Any] | None = None
    """Prompt deduplication: column, threshold, embedder, keep (see ``real_hub.deduplicate``)."""
    decontamination: dict[str, Any] | None = None
    """Prompt decontamination: column, threshold, embedder and the ``against`` sets."""

    def to_dict(self) -> dict[str, Any]:
        """The set fields, for the card's YAML."""
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, [])}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Statistics:
    """What a curated config holds and what was left out, and why."""

    rows_in: int | None = None
    converted: int | None = None
    """Rows after conversion to the canonical shape: pairs, or prompts for candidates."""
    rows_out: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    annotation_saved: float | None = None
    similarity: dict[str, float] = field(default_factory=dict)
    margin: dict[str, float] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)
    """For prompt-only sources: samples, tokens, stops, truncations, empty and all-identical rows."""
    dedup: dict[str, int] = field(default_factory=dict)
    """Prompt deduplication: rows in, exact and semantic removals, rows out, duplicate groups."""
    decontamination: dict[str, int] = field(default_factory=dict)
    """Prompt decontamination: rows in, exact and semantic removals, rows out, removals per against set."""
    budget_curve: dict[str, str] = field(default_factory=dict)
    """What a budget curve measured on the labelled pairs (:meth:`real_hub.BudgetCurve.card_summary`): the
    method, all pairs' held-out accuracy, the strategy's at the budget, the annotation saved."""

    def to_dict(self) -> dict[str, Any]:
        """The set fields, for the card's YAML."""
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, [])}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Statistics:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def config_section(config: str, provenance: Provenance, statistics: Statistics) -> str:
    """The card body's marked section of one config: provenance and statistics tables."""
    import jinja2

    stats = []
    for key, value in statistics.to_dict().items():
        if isinstance(value, dict):
            stats += [(f"{key}.{k}", markdown_cell(v)) for k, v in value.items()]
        else:
            stats.append((key, markdown_cell(value)))
    template = jinja2.Template(_template("dataset_card_config.md"), keep_trailing_newline=True)
    note = (
        "No pairs were selected: this config holds every pair of the source (curated without a budget)."
        if provenance.strategy == NO_SELECTION
        else ""
    )
    return template.render(
        config=config,
        note=note,
        provenance=[(k, markdown_cell(v)) for k, v in provenance.to_dict().items()],
        statistics=stats,
    )


def build_card(
    repo_or_folder: str,
    config: str,
    splits: dict[str, str],
    provenance: Provenance,
    statistics: Statistics,
    existing: DatasetCard | None = None,
) -> DatasetCard:
    """Card for ``config`` (split -> data file pattern), keeping ``existing``'s other configs."""
    old = existing.data.to_dict() if existing is not None else {}
    configs = [c for c in old.get("configs", []) if c.get("config_name") != config]
    configs.append(
        {"config_name": config, "data_files": [{"split": s, "path": p} for s, p in splits.items()]}
    )
    configs.sort(key=lambda c: c["config_name"])
    meta = dict(old.get("real_hub", {}).get("configs", {}))
    meta[config] = {"provenance": provenance.to_dict(), "statistics": statistics.to_dict()}
    tags = list(dict.fromkeys(list(old.get("tags", [])) + TAGS))
    data = DatasetCardData(
        license=provenance.license or old.get("license"),
        task_categories=["text-generation"],
        tags=tags,
        pretty_name=old.get("pretty_name")
        or f"{repo_or_folder.rstrip('/').split('/')[-1]} (real-hub curated)",
        configs=configs,
        real_hub={"configs": dict(sorted(meta.items()))},
    )
    sections = {m.group("name"): m.group(0) for m in _SECTION.finditer(existing.text)} if existing else {}
    sections[config] = config_section(config, provenance, statistics)
    for entry in configs:  # a section lost from the text (a card cut short) comes back from the YAML
        name, recorded = entry["config_name"], meta.get(entry["config_name"])
        if name not in sections and isinstance(recorded, dict):
            sections[name] = config_section(
                name,
                Provenance.from_dict(recorded.get("provenance") or {}),
                Statistics.from_dict(recorded.get("statistics") or {}),
            )
    return DatasetCard.from_template(
        data,
        template_path=str(TEMPLATES / "dataset_card.md"),
        repo_id=repo_or_folder,
        first_config=configs[0]["config_name"],
        sections=[sections[name] for name in sorted(sections)],
        **training_context(repo_or_folder, configs[0]["config_name"], meta),
    )


def training_context(repo_or_folder: str, first: str, meta: dict[str, Any]) -> dict[str, Any]:
    """What the card's "Load it" part needs: the model its TRL lines train, and the notes on the columns.

    The model is the one the first config's reference log-probs belong to, else :data:`EXAMPLE_MODEL`;
    ``margin`` says whether a config carries Dr.SoW margins (which TRL's ``RewardTrainer`` uses);
    ``references`` lists each config's recorded reference (model, revision, precision, TRL settings).
    """
    reference = meta.get(first, {}).get("provenance", {}).get("reference") or {}
    references = [
        {**entry["provenance"]["reference"], "config": name}
        for name, entry in sorted(meta.items())
        if entry.get("provenance", {}).get("reference")
    ]
    for ref in references:
        ref["revision"] = ref.get("revision") or "main"
    return {
        "train_model": reference.get("model") or EXAMPLE_MODEL,
        "output_name": repo_or_folder.rstrip("/").split("/")[-1],
        "margin": any(entry.get("statistics", {}).get("margin") for entry in meta.values()),
        "references": references,
    }


def read_metadata(card: DatasetCard, config: str) -> tuple[Provenance, Statistics]:
    """Provenance and statistics of ``config`` as recorded in the card's YAML."""
    entry = card.data.to_dict().get("real_hub", {}).get("configs", {}).get(config)
    if entry is None:
        return Provenance(), Statistics()
    return Provenance.from_dict(entry.get("provenance", {})), Statistics.from_dict(
        entry.get("statistics", {})
    )
