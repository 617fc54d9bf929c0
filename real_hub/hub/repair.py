"""Rebuilding a curated folder's card from the shards on disk, when ``README.md`` is broken or lost.

A write refuses to touch a folder whose card cannot be parsed (it would drop the configs the card can
no longer name); :func:`repair_card` (``real-hub repair FOLDER``) makes the folder writable again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard

from ..atomic import write_text_atomic
from ..errors import ConfigError, CorruptFileError
from .commit import clean_staging, copy_aside, folder_lock, write_step
from .dataset_card import Provenance, Statistics, build_card
from .folder import (
    README,
    SHARD,
    card_entries,
    entry_splits,
    parquet_problem,
    read_card,
    shard_folders,
    uncommitted,
)

logger = logging.getLogger(__name__)

BACKUP_SUFFIX = ".broken"
_SPLIT = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}")


@dataclass
class RepairReport:
    """What :func:`repair_card` found and wrote."""

    folder: str
    repaired: bool = False
    """False when the card was readable and listed the folder's configs: nothing was written."""
    problem: str | None = None
    """What was wrong with the card (the error a write gave)."""
    configs: dict[str, dict[str, str]] = field(default_factory=dict)
    """The rebuilt card's configs: config -> split -> shard path."""
    recovered: list[str] = field(default_factory=list)
    """Configs whose provenance and statistics were read back from what remained of the old card."""
    left_out: dict[str, str] = field(default_factory=dict)
    """Shards not listed because they are broken: path -> what is wrong."""
    backup: str | None = None
    """Where the broken card was copied before it was replaced."""


def _salvage(text: str) -> dict[str, Any]:
    """The longest readable start of a card's YAML block (a line cut short is never trusted)."""
    import yaml

    head = re.match(r"^\s*---[ \t]*\r?\n", text)
    if head is None:
        return {}
    body = text[head.end() :]
    end = re.search(r"^---[ \t]*$", body, re.M)
    block = body[: end.start()] if end else body
    lines = block.splitlines()
    if end is None and not block.endswith("\n"):
        lines = lines[:-1]  # cut mid-line: a number cut short would still parse
    for k in range(len(lines), 0, -1):
        try:
            data = yaml.safe_load("\n".join(lines[:k]))
        except yaml.YAMLError:
            continue
        if isinstance(data, dict):
            return data
    return {}


def _listed(salvaged: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Config -> split -> path from what remains of the ``configs`` block (exact paths only)."""
    out: dict[str, dict[str, str]] = {}
    configs = salvaged.get("configs")
    for entry in configs if isinstance(configs, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("config_name"), str):
            continue
        items = entry.get("data_files")
        for item in items if isinstance(items, list) else []:
            if (
                isinstance(item, dict)
                and isinstance(item.get("split"), str)
                and isinstance(item.get("path"), str)
            ):
                out.setdefault(entry["config_name"], {})[item["split"]] = item["path"]
    return out


def _choose(
    folder: Path, listed: dict[str, dict[str, str]], left_out: dict[str, str]
) -> dict[str, dict[str, str]]:
    """Each config's shard per split: the one the old card listed if sound, else the newest sound one."""
    chosen: dict[str, dict[str, str]] = {}
    pending = uncommitted(folder)  # moved in by a write that was killed before its card: never committed
    for config in sorted(set(listed) | set(shard_folders(folder))):
        splits: dict[str, str] = {}
        for split, rel in listed.get(config, {}).items():
            problem = parquet_problem(folder / rel)
            if problem is None:
                splits[split] = rel
            else:
                left_out[str(folder / rel)] = problem
        sub = folder / config
        shards = sorted(
            (p for p in sub.iterdir() if SHARD.match(p.name)) if sub.is_dir() else [],
            key=lambda p: p.stat().st_mtime_ns,
            reverse=True,
        )
        for path in shards:
            split = _SPLIT.match(path.name).group("split")  # type: ignore[union-attr]
            if split in splits or f"{config}/{path.name}" in pending:
                continue
            problem = parquet_problem(path)
            if problem is None:
                splits[split] = f"{config}/{path.name}"
            else:
                left_out[str(path)] = problem
        if splits:
            chosen[config] = dict(sorted(splits.items()))
    return chosen


def _rows(folder: Path, splits: dict[str, str]) -> dict[str, int]:
    import pyarrow.parquet as pq

    return {split: pq.read_metadata(folder / rel).num_rows for split, rel in splits.items()}


def _needs_repair(folder: Path) -> str | None:
    """Why the card must be rebuilt, or ``None`` when it reads and names every config on disk."""
    try:
        card = read_card(folder)
    except CorruptFileError as err:
        return str(err)
    if not card_entries(card) and shard_folders(folder):
        return f"{folder / README} is missing or lists no configs, but shards of configs are on disk"
    return None


def repair_card(folder: str | Path) -> RepairReport:
    """Rebuild ``folder/README.md`` from the shards on disk and what can still be read of the old card.

    Each config sub-folder with shards becomes a config again; per split, the shard the old card still
    names is kept if it is sound, else the newest sound one. Provenance and statistics come back from the
    readable part of the old card's YAML (else only the row counts, from the shards). The broken card is
    first copied to ``README.md.broken``. A readable card is left alone.

    Raises:
        ConfigError: ``folder`` is not a folder, or holds no shard to build a card from.
        OutputError: the new card cannot be written (the old one is then still there).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder: give the folder that save_curated wrote")
    report = RepairReport(str(folder))
    with folder_lock(folder):
        report.problem = _needs_repair(folder)
        if report.problem is None:
            card = read_card(folder)
            report.configs = {
                e["config_name"]: {s: ", ".join(p) for s, p in entry_splits(e).items()}
                for e in card_entries(card)
            }
            return report
        readme = folder / README
        text = readme.read_bytes().decode("utf-8", errors="replace") if readme.is_file() else ""
        salvaged = _salvage(text)
        report.configs = _choose(folder, _listed(salvaged), report.left_out)
        if not report.configs:
            raise ConfigError(
                f"{folder} holds no sound shard under a config folder: nothing to build a card from"
            )
        card = _rebuild(folder, salvaged, report)
        with write_step(folder, f"repair the card of {folder}", f"writing the rebuilt {README}"):
            if readme.is_file():
                report.backup = str(copy_aside(readme, BACKUP_SUFFIX))
            write_text_atomic(readme, str(card))
            clean_staging(folder, card)  # shards of interrupted writes, never committed
    report.repaired = True
    logger.info("Rebuilt %s with configs %s", readme, sorted(report.configs))
    return report


def _rebuild(folder: Path, salvaged: dict[str, Any], report: RepairReport) -> DatasetCard:
    """The new card: each chosen config, with what the old card recorded about it where that survived."""
    import yaml

    base = {
        k: salvaged[k] for k in ("license", "pretty_name", "tags") if isinstance(salvaged.get(k), (str, list))
    }
    card = DatasetCard("---\n" + yaml.safe_dump(base) + "---\n") if base else None
    meta = salvaged.get("real_hub", {})
    meta = meta.get("configs", {}) if isinstance(meta, dict) else {}
    for config, splits in report.configs.items():
        recorded = meta.get(config) if isinstance(meta, dict) else None
        provenance, statistics = Provenance(), Statistics(rows_out=_rows(folder, splits))
        if isinstance(recorded, dict):
            prov, stats = recorded.get("provenance"), recorded.get("statistics")
            provenance = Provenance.from_dict(prov) if isinstance(prov, dict) else provenance
            statistics = Statistics.from_dict(stats) if isinstance(stats, dict) else statistics
            statistics.rows_out = _rows(folder, splits)
            report.recovered.append(config)
        card = build_card(str(folder), config, splits, provenance, statistics, existing=card)
    assert card is not None
    return card
