"""Dataset cards for curated preference sets: provenance and statistics, one section per config.

The card's YAML holds the ``configs`` that ``load_dataset(repo, config)`` reads, the Hub's tags, and a
``real_hub`` block with each config's provenance and statistics in machine-readable form (what
:func:`real_hub.load_curated` parses back). The body repeats them for people, one marked section per
config, so writing another config keeps the sections already there.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

TAGS = ["dpo", "preference", "real-hub"]
_SECTION = re.compile(
    r"<!-- real-hub:config:(?P<name>[^ ]+):start -->.*?<!-- real-hub:config:(?P=name):end -->\n?", re.S
)


@dataclass
class Provenance:
    """How a curated config was made."""

    source: str | None = None
    source_revision: str | None = None
    converter: str | None = None
    embedder: str | None = None
    embedder_revision: str | None = None
    reward_models: dict[str, str] | None = None
    normalize: str | None = None
    strategy: str | None = None
    pairs_per_prompt: int | None = None
    budget: float | None = None
    seed: int | None = None
    license: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

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

    def to_dict(self) -> dict[str, Any]:
        """The set fields, for the card's YAML."""
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, [])}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Statistics:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def library_versions() -> dict[str, str]:
    """Versions of real-hub and the libraries that shape its output, for provenance."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("real-hub", "datasets", "huggingface-hub", "transformers", "sentence-transformers", "torch"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def summarize(values: Any) -> dict[str, float]:
    """Count, min, mean, median and max of a numeric column, for the card."""
    import numpy as np

    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return {"count": 0}
    return {
        "count": int(arr.size),
        "min": round(float(arr.min()), 6),
        "mean": round(float(arr.mean()), 6),
        "median": round(float(np.median(arr)), 6),
        "max": round(float(arr.max()), 6),
    }


def _section(config: str, prov: Provenance, stats: Statistics) -> str:
    lines = [f"<!-- real-hub:config:{config}:start -->", f"### Config `{config}`", ""]
    p = prov.to_dict()
    if p:
        lines += ["**Provenance**", "", "| field | value |", "| --- | --- |"]
        lines += [f"| {k} | {_cell(v)} |" for k, v in p.items()]
        lines.append("")
    s = stats.to_dict()
    if s:
        lines += ["**Statistics**", "", "| statistic | value |", "| --- | --- |"]
        for k, v in s.items():
            if isinstance(v, dict):
                lines += [f"| {k}.{kk} | {_cell(vv)} |" for kk, vv in v.items()]
            else:
                lines.append(f"| {k} | {_cell(v)} |")
        lines.append("")
    lines.append(f"<!-- real-hub:config:{config}:end -->")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value).replace("|", "\\|")


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
    sections[config] = _section(config, provenance, statistics)
    first = configs[0]["config_name"]
    body = "\n".join(
        [
            f"# {data.pretty_name}",
            "",
            "Preference pairs (prompt, chosen, rejected) curated with "
            "[real-hub](https://github.com/real-hub/real-hub): REAL selection of dissimilar response pairs "
            "(arXiv 2409.17169) and, where recorded, Dr.SoW density-ratio rewards (arXiv 2411.02481). "
            "One config per selection strategy.",
            "",
            "## Load it",
            "",
            "```python",
            "from datasets import load_dataset",
            "",
            f'pairs = load_dataset("{repo_or_folder}", "{first}")',
            "```",
            "",
            "## Configs",
            "",
            *[sections[name] for name in sorted(sections)],
        ]
    )
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def read_metadata(card: DatasetCard, config: str) -> tuple[Provenance, Statistics]:
    """Provenance and statistics of ``config`` as recorded in the card's YAML."""
    entry = card.data.to_dict().get("real_hub", {}).get("configs", {}).get(config)
    if entry is None:
        return Provenance(), Statistics()
    return Provenance.from_dict(entry.get("provenance", {})), Statistics.from_dict(
        entry.get("statistics", {})
    )


def dumps(data: Any) -> str:
    """JSON for logs and reports (sorted keys)."""
    return json.dumps(data, indent=2, sort_keys=True, default=str)
