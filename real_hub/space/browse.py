"""Browsing a curated set: loading it, filtering and paging its pairs, the data of the plots.

Plain functions of a :class:`PairSource` (no gradio here), so that the page stays thin and every piece is
tested directly. Filters run on numpy/pyarrow columns built once per config, and a page fetches only its
own rows, so 100,000 pairs browse as fast as 100. How the values look in the page is ``render.py``'s.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict

from ..errors import ConfigError, hub_error
from ..hub.dataset_card import Provenance, Statistics
from ..real.select import STRATEGIES
from ..reporting import markdown_cell
from ..schema import CANDIDATE_SIMILARITY, PREFERENCE_COLUMNS
from ..validate import require_columns
from .render import as_text, preview

logger = logging.getLogger(__name__)

DEMO = "demo"
FIRST_CONFIG = "dissimilar"
"""The config a set opens on when it has one: REAL's recommended strategy."""


@dataclass(frozen=True)
class PairFilter:
    """Which pairs of one config and split to show; ``None`` bounds are open."""

    config: str
    split: str = "train"
    similarity_min: float | None = None
    similarity_max: float | None = None
    margin_min: float | None = None
    margin_max: float | None = None
    domain: str | None = None
    search: str = ""


@dataclass
class SplitView:
    """One split of one config, with the columns the filters read."""

    dataset: Dataset
    similarity: np.ndarray
    margin: np.ndarray
    domain: np.ndarray | None
    _text: pa.Array | None = None


@dataclass
class PairSource:
    """A loaded curated set: every config's splits and its card metadata."""

    name: str
    configs: dict[str, DatasetDict]
    provenance: dict[str, Provenance] = field(default_factory=dict)
    statistics: dict[str, Statistics] = field(default_factory=dict)
    _views: dict[tuple[str, str], SplitView] = field(default_factory=dict, repr=False)
    _filtered: OrderedDict = field(default_factory=OrderedDict, repr=False)

    # ------------------------------------------------------------------------------ structure

    def config_names(self) -> list[str]:
        """The configs, REAL's strategies first in their usual order (``dissimilar`` leads), then the rest."""
        rank = {s: k for k, s in enumerate(STRATEGIES)}
        return sorted(self.configs, key=lambda c: (rank.get(c, len(rank)), list(self.configs).index(c)))

    def first_config(self) -> str:
        """The config the page opens on: :data:`FIRST_CONFIG` when the set has it, else the first listed."""
        return FIRST_CONFIG if FIRST_CONFIG in self.configs else self.config_names()[0]

    def splits(self, config: str) -> list[str]:
        """Split names of ``config``."""
        return list(self._config(config).keys())

    def domains(self, config: str, split: str) -> list[str]:
        """The distinct domains of a config's split (empty when it has no ``domain`` column)."""
        view = self.view(config, split)
        if view.domain is None:
            return []
        return sorted({d for d in view.domain.tolist() if d})

    def _config(self, config: str) -> DatasetDict:
        if config not in self.configs:
            raise ConfigError(f"{self.name} has no config {config!r}; it has {sorted(self.configs)}")
        return self.configs[config]

    def view(self, config: str, split: str) -> SplitView:
        """The filterable columns of one split, built on first use."""
        key = (config, split)
        if key not in self._views:
            dd = self._config(config)
            if split not in dd:
                raise ConfigError(f"config {config!r} has no split {split!r}; it has {list(dd)}")
            self._views[key] = _build_view(dd[split])
        return self._views[key]

    # ------------------------------------------------------------------------------ filtering and pages

    def filter(self, f: PairFilter) -> np.ndarray:
        """Row indices of the pairs that pass ``f``, in dataset order (the last few results are cached)."""
        if f in self._filtered:
            self._filtered.move_to_end(f)
            return self._filtered[f]
        view = self.view(f.config, f.split)
        mask = np.ones(len(view.dataset), dtype=bool)
        mask &= _in_range(view.similarity, f.similarity_min, f.similarity_max)
        mask &= _in_range(view.margin, f.margin_min, f.margin_max)
        if f.domain:
            if view.domain is None:
                mask[:] = False
            else:
                mask &= view.domain == f.domain
        if f.search.strip():
            if view._text is None:
                view._text = _search_text(view.dataset)
            hits = pc.match_substring(view._text, f.search.strip().lower())
            mask &= hits.to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(mask)
        self._filtered[f] = rows
        while len(self._filtered) > 16:
            self._filtered.popitem(last=False)
        return rows

    def page(self, f: PairFilter, page: int, size: int = 20) -> tuple[list[dict[str, Any]], int, int]:
        """One page of the filtered table: (rows, total matching pairs, the page actually shown).

        Each row has ``#`` (its position in the filtered list), ``row`` (its dataset index),
        ``similarity``, ``margin``, ``domain`` and text previews. ``page`` is clamped to the pages there are.
        """
        rows = self.filter(f)
        pages = max(1, -(-len(rows) // size))
        page = min(max(int(page), 0), pages - 1)
        chosen = rows[page * size : (page + 1) * size]
        view = self.view(f.config, f.split)
        texts = view.dataset.select_columns(list(PREFERENCE_COLUMNS)).select(chosen.tolist())[:]
        out = []
        for k, r in enumerate(chosen.tolist()):
            out.append(
                {
                    "#": page * size + k,
                    "row": r,
                    "similarity": _num(view.similarity[r]),
                    "margin": _num(view.margin[r]),
                    "domain": str(view.domain[r]) if view.domain is not None else "",
                    **{name: preview(texts[name][k]) for name in PREFERENCE_COLUMNS},
                }
            )
        return out, len(rows), page

    def pair(self, f: PairFilter, position: int) -> tuple[dict[str, Any] | None, int, int]:
        """The pair at ``position`` of the filtered list (clamped): (row dict, position, total)."""
        rows = self.filter(f)
        if not len(rows):
            return None, 0, 0
        position = min(max(int(position), 0), len(rows) - 1)
        r = int(rows[position])
        item = dict(self.view(f.config, f.split).dataset[r])
        item["row"] = r
        return item, position, len(rows)


def candidate_similarities(pair: dict[str, Any]) -> np.ndarray | None:
    """The similarity matrix of the candidates of ``pair``'s prompt, as ``SelectPairs`` stored it, if any."""
    value = pair.get(CANDIDATE_SIMILARITY)
    if value is None or not len(value):
        return None
    return np.asarray(value, dtype=np.float64)


def _build_view(ds: Dataset) -> SplitView:
    require_columns(ds.column_names, PREFERENCE_COLUMNS, hint="a curated set needs TRL's preference columns")
    table = ds.with_format("arrow")[:] if len(ds) else None

    def column(name: str) -> np.ndarray:
        if table is None or name not in ds.column_names:
            return np.full(len(ds), np.nan)
        return np.asarray(table[name].to_numpy(zero_copy_only=False), dtype=np.float64)

    margin = column("margin")
    if "margin" not in ds.column_names:
        for a, b in (("chosen_reward", "rejected_reward"), ("chosen_score", "rejected_score")):
            if a in ds.column_names and b in ds.column_names:
                margin = column(a) - column(b)
                break
    domain = None
    if "domain" in ds.column_names and table is not None:
        domain = np.asarray(table["domain"].fill_null("").to_pylist(), dtype=object)
    return SplitView(ds, column("similarity"), margin, domain)


def _in_range(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    mask = np.ones(values.shape, dtype=bool)
    if lo is not None:
        mask &= values >= lo
    if hi is not None:
        mask &= values <= hi
    return mask


def _num(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


def _search_text(ds: Dataset) -> pa.Array:
    """One lower-cased string per row: prompt, chosen and rejected joined (conversations flattened)."""
    table = ds.with_format("arrow")[:]
    parts = []
    for name in PREFERENCE_COLUMNS:
        col = table[name]
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            parts.append(pc.fill_null(col, ""))
        else:
            parts.append(pa.array([as_text(v) for v in col.to_pylist()], pa.string()))
    return pc.utf8_lower(pc.binary_join_element_wise(*parts, "\n")).combine_chunks()


# ---------------------------------------------------------------------------------------------- plots


def similarity_histogram(source: PairSource, bins: int = 20) -> list[dict[str, Any]]:
    """Counts of pairs per similarity bin, one series per config (its first split): rows for a bar plot."""
    series = {c: source.view(c, source.splits(c)[0]).similarity for c in source.configs}
    values = np.concatenate([s[~np.isnan(s)] for s in series.values()] or [np.zeros(0)])
    if not values.size:
        return []
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, bins + 1)
    rows = []
    for config, s in series.items():
        counts, _ = np.histogram(s[~np.isnan(s)], bins=edges)
        for k, n in enumerate(counts):
            rows.append(
                {"similarity": f"{(edges[k] + edges[k + 1]) / 2:.3f}", "pairs": int(n), "strategy": config}
            )
    return rows


def margin_points(source: PairSource, limit: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """(similarity, margin) of up to ``limit`` pairs per config (a seeded sample), for a scatter plot."""
    rows = []
    rng = np.random.default_rng(seed)
    for config in source.configs:
        v = source.view(config, source.splits(config)[0])
        keep = np.flatnonzero(~np.isnan(v.similarity) & ~np.isnan(v.margin))
        if len(keep) > limit:
            keep = np.sort(rng.choice(keep, limit, replace=False))
        rows += [
            {"similarity": float(v.similarity[i]), "margin": float(v.margin[i]), "strategy": config}
            for i in keep.tolist()
        ]
    return rows


# ---------------------------------------------------------------------------------------------- loading


def load_pair_source(source: str | Path | None = None, *, encoder: Any = None) -> PairSource:
    """Load a curated set for browsing: a local folder or Hub id (via :func:`load_curated`), or the demo.

    ``None``, ``""`` or ``"demo"`` selects the embedded demo, embedded (with ``encoder``, by default
    all-MiniLM-L6-v2) and selected with every strategy in memory by :func:`real_hub.demo.select_demo`,
    as ``real-hub demo`` does before it saves. Nothing is executed from the loaded set (``load_dataset``
    reads parquet/JSON data files only, and the card is YAML).

    Raises:
        ConfigError: the repo or folder is unknown, or lists no configs.
        ColumnError: a split lacks ``prompt``, ``chosen`` or ``rejected``.
    """
    name = str(source).strip() if source is not None else ""
    if name in ("", DEMO):
        return _demo_source(encoder)
    from ..hub.curated import card_configs, existing_card, load_curated

    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{name} is a file; give the folder that save_curated wrote")
        card = existing_card(path)
        if card is None:
            raise ConfigError(
                f"{name} has no README.md dataset card listing its configs (write it with save_curated)"
            )
    else:
        card = _hub_card(name)
    configs = card_configs(card)
    if not configs:
        raise ConfigError(f"{name}'s dataset card lists no configs")
    out = PairSource(name, {})
    for config in configs:
        curated = load_curated(name, config)
        out.configs[config] = curated.dataset
        out.provenance[config] = curated.provenance
        out.statistics[config] = curated.statistics
    for config, dd in out.configs.items():  # fail now, with the column named, not on the first click
        for split in dd:
            out.view(config, split)
    return out


def _hub_card(repo_id: str) -> Any:
    from huggingface_hub import DatasetCard, hf_hub_download

    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", repo_id):
        raise ConfigError(f"{repo_id!r} is neither a local folder nor a Hub dataset id (owner/name)")
    what = f"could not read the dataset card of Hub dataset {repo_id!r}"
    try:
        path = hf_hub_download(repo_id, "README.md", repo_type="dataset")
    except Exception as err:
        # A Hub failure in the project's words; anything else (no README, offline with nothing cached)
        # as one readable line.
        mapped = hub_error(err, what, repo_id=repo_id)
        if mapped is not None:
            raise mapped from err
        raise ConfigError(
            f"{what} ({type(err).__name__}); check the id, your token and the connection"
        ) from err
    return DatasetCard.load(path)


def _demo_source(encoder: Any = None) -> PairSource:
    from ..demo import select_demo
    from ..models import DEFAULT_EMBEDDER

    configs = select_demo(encoder if encoder is not None else DEFAULT_EMBEDDER)
    out = PairSource(DEMO, {})
    for strategy, curated in configs.items():
        out.configs[strategy] = curated.dataset
        out.provenance[strategy] = curated.provenance
        out.statistics[strategy] = curated.statistics
    return out


class SourceCache:
    """Loaded sources by name, the most recent few kept (each page request looks its source up here)."""

    def __init__(self, size: int = 4, encoder: Any = None) -> None:
        self.size = size
        self.encoder = encoder
        self._items: OrderedDict[str, PairSource] = OrderedDict()

    def get(self, source: str | None) -> PairSource:
        """The loaded source, loading it on first use (errors are not cached)."""
        key = (source or "").strip() or DEMO
        if key not in self._items:
            self._items[key] = load_pair_source(key, encoder=self.encoder)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return self._items[key]


def metadata_markdown(source: PairSource) -> tuple[str, str]:
    """The card's provenance and statistics of every config, as two markdown tables."""
    prov_rows, stat_rows = [], []
    for config in source.configs:
        for k, v in source.provenance.get(config, Provenance()).to_dict().items():
            prov_rows.append(f"| {config} | {k} | {markdown_cell(v, '.4g')} |")
        for k, v in source.statistics.get(config, Statistics()).to_dict().items():
            if isinstance(v, dict):
                stat_rows += [f"| {config} | {k}.{kk} | {markdown_cell(vv, '.4g')} |" for kk, vv in v.items()]
            else:
                stat_rows.append(f"| {config} | {k} | {markdown_cell(v, '.4g')} |")
    head = "| config | {} | value |\n| --- | --- | --- |\n"
    prov = head.format("field") + "\n".join(prov_rows) if prov_rows else "_no provenance recorded_"
    stats = head.format("statistic") + "\n".join(stat_rows) if stat_rows else "_no statistics recorded_"
    return prov, stats
