"""Browsing a curated set: loading it, filtering and paging its pairs, word diffs, plot data.

What the Space shows, as plain functions of a :class:`PairSource` (no gradio here), so that the page
stays thin and every piece is tested directly. Filters run on numpy/pyarrow columns built once per
config, and a page fetches only its own rows, so 100,000 pairs browse as fast as 100.
"""

from __future__ import annotations

import difflib
import html
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

from ..errors import ConfigError
from ..hub.dataset_card import Provenance, Statistics
from ..reporting import library_versions, summarize
from ..validate import require_columns

logger = logging.getLogger(__name__)

DEMO = "demo"
PAIR_COLUMNS = ("prompt", "chosen", "rejected")
PREVIEW_CHARS = 120


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
class _View:
    """One split of one config, with the columns the filters read."""

    dataset: Dataset
    similarity: np.ndarray
    margin: np.ndarray
    domain: np.ndarray | None
    _text: pa.Array | None = None


@dataclass
class PairSource:
    """A loaded curated set: every config's splits, its card metadata and, for the demo, the candidates."""

    name: str
    configs: dict[str, DatasetDict]
    provenance: dict[str, Provenance] = field(default_factory=dict)
    statistics: dict[str, Statistics] = field(default_factory=dict)
    candidates: Dataset | None = None
    """Candidates with ``id``, ``responses`` and ``responses_embedding`` (the heatmap), when known."""
    _views: dict[tuple[str, str], _View] = field(default_factory=dict, repr=False)
    _filtered: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _candidate_rows: dict[str, int] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------------------ structure

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

    def view(self, config: str, split: str) -> _View:
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
        data = view.dataset.select(chosen.tolist()) if len(chosen) else None
        out = []
        for k, r in enumerate(chosen.tolist()):
            out.append(
                {
                    "#": page * size + k,
                    "row": r,
                    "similarity": _num(view.similarity[r]),
                    "margin": _num(view.margin[r]),
                    "domain": str(view.domain[r]) if view.domain is not None else "",
                    "prompt": preview(data[k]["prompt"]),
                    "chosen": preview(data[k]["chosen"]),
                    "rejected": preview(data[k]["rejected"]),
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

    # ------------------------------------------------------------------------------ candidates (heatmap)

    def candidate_similarities(self, pair: dict[str, Any]) -> np.ndarray | None:
        """Cosine similarities of all candidates of ``pair``'s prompt, when their embeddings are known."""
        if self.candidates is None or "responses_embedding" not in self.candidates.column_names:
            return None
        if self._candidate_rows is None:
            ids = self.candidates["id"] if "id" in self.candidates.column_names else []
            self._candidate_rows = {str(i): k for k, i in enumerate(ids)}
        key = pair.get("id", pair.get("source_id"))
        if key is None or str(key) not in self._candidate_rows:
            return None
        x = np.asarray(
            self.candidates[self._candidate_rows[str(key)]]["responses_embedding"], dtype=np.float64
        )
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x @ x.T


def _build_view(ds: Dataset) -> _View:
    require_columns(ds.column_names, PAIR_COLUMNS, hint="a curated set needs TRL's preference columns")
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
    return _View(ds, column("similarity"), margin, domain)


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
    for name in PAIR_COLUMNS:
        col = table[name]
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            parts.append(pc.fill_null(col, ""))
        else:
            parts.append(pa.array([as_text(v) for v in col.to_pylist()], pa.string()))
    return pc.utf8_lower(pc.binary_join_element_wise(*parts, "\n")).combine_chunks()


# ---------------------------------------------------------------------------------------------- text


def as_text(value: Any) -> str:
    """A prompt or response as plain text; a conversation becomes ``role: content`` lines."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "\n".join(
            f"{m.get('role', '?')}: {m.get('content', '')}" if isinstance(m, dict) else str(m) for m in value
        )
    return str(value)


def response_text(value: Any) -> str:
    """A response's own text: for a conversation, the contents of its turns only."""
    if isinstance(value, (list, tuple)):
        return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value)
    return as_text(value)


def preview(value: Any, chars: int = PREVIEW_CHARS) -> str:
    """The start of a text (for conversations, the last turn), on one line."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[-1], dict):
        value = value[-1].get("content", "")
    text = " ".join(as_text(value).split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def turns_html(value: Any) -> str:
    """HTML of a prompt or response: one block per conversation turn, text escaped."""
    if isinstance(value, (list, tuple)) and all(isinstance(m, dict) for m in value):
        blocks = []
        for m in value:
            role = html.escape(str(m.get("role", "")))
            text = _escape(m.get("content", ""))
            blocks.append(f'<div class="rh-turn rh-{role}"><b>{role}</b><div>{text}</div></div>')
        return "".join(blocks)
    return f'<div class="rh-turn"><div>{_escape(as_text(value))}</div></div>'


def _escape(text: Any) -> str:
    return html.escape(str(text)).replace("\n", "<br>")


_TOKEN = re.compile(r"\S+\s*")


def word_diff(a: str, b: str) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]]]:
    """Words of ``a`` and of ``b`` with those not shared marked, as ``gr.HighlightedText`` values.

    Words are whitespace-separated tokens (the space after a word stays with it); a word of ``a`` is
    labelled ``"only here"`` when difflib's word alignment finds no match for it in ``b``, and vice versa.
    Runs of equally labelled words are merged.
    """
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    ka, kb = [t.strip() for t in ta], [t.strip() for t in tb]
    la: list[str | None] = ["only here"] * len(ta)
    lb: list[str | None] = ["only here"] * len(tb)
    for block in difflib.SequenceMatcher(None, ka, kb, autojunk=False).get_matching_blocks():
        la[block.a : block.a + block.size] = [None] * block.size
        lb[block.b : block.b + block.size] = [None] * block.size
    return _merge(ta, la), _merge(tb, lb)


def _merge(tokens: list[str], labels: list[str | None]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for tok, lab in zip(tokens, labels):
        if out and out[-1][1] == lab:
            out[-1] = (out[-1][0] + tok, lab)
        else:
            out.append((tok, lab))
    return out


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


def heatmap_html(sim: np.ndarray, chosen: int | None, rejected: int | None) -> str:
    """An HTML heatmap of a prompt's candidate similarities; the selected pair's two cells outlined."""
    n = sim.shape[0]

    def name(i: int) -> str:
        tag = " (chosen)" if i == chosen else " (rejected)" if i == rejected else ""
        return f"#{i}{tag}"

    head = "".join(f"<th>{html.escape(name(j))}</th>" for j in range(n))
    body = []
    for i in range(n):
        cells = []
        for j in range(n):
            v = float(sim[i, j])
            shade = int(255 - 200 * max(0.0, min(1.0, (v + 1) / 2)))
            mark = {chosen, rejected} == {i, j} and i != j
            style = f"background: rgb({shade},{shade},255);" + (
                " outline: 3px solid #e4572e;" if mark else ""
            )
            cls = ' class="rh-selected"' if mark else ""
            cells.append(f'<td{cls} style="{style}" title="{v:.3f}">{v:.2f}</td>')
        body.append(f"<tr><th>{html.escape(name(i))}</th>{''.join(cells)}</tr>")
    return (
        '<table class="rh-heatmap"><tr><th></th>' + head + "</tr>" + "".join(body) + "</table>"
        "<p>Cosine similarity between the prompt's candidates; the selected pair is outlined.</p>"
    )


# ---------------------------------------------------------------------------------------------- loading


def load_pair_source(source: str | Path | None = None, *, encoder: Any = None) -> PairSource:
    """Load a curated set for browsing: a local folder or Hub id (via :func:`load_curated`), or the demo.

    ``None``, ``""`` or ``"demo"`` selects the embedded demo, embedded (with ``encoder``, by default
    all-MiniLM-L6-v2) and selected with every strategy in memory, so its candidates' embeddings are at
    hand for the heatmap. Nothing is executed from the loaded set (``load_dataset`` reads parquet/JSON
    data files only, and the card is YAML).

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
    try:
        return DatasetCard.load(hf_hub_download(repo_id, "README.md", repo_type="dataset"))
    except Exception as err:  # not found, gated, offline: one readable line
        raise ConfigError(
            f"could not read the dataset card of Hub dataset {repo_id!r} ({type(err).__name__}); "
            "check the id, your token and the connection"
        ) from err


def _demo_source(encoder: Any = None) -> PairSource:
    from ..demo import load_demo
    from ..models import DEFAULT_EMBEDDER
    from ..real.embed import EmbedResponses
    from ..real.select import STRATEGIES, select_pairs

    candidates = load_demo()
    embed = EmbedResponses(encoder if encoder is not None else DEFAULT_EMBEDDER)
    embedded = candidates.map(embed, batched=True, features=embed.output_features(candidates.features))
    out = PairSource(DEMO, {}, candidates=embedded)
    embedder = DEFAULT_EMBEDDER if encoder is None else type(encoder).__name__
    for strategy in STRATEGIES:
        pairs, report = select_pairs(embedded, strategy, seed=0)
        out.configs[strategy] = DatasetDict({"train": pairs})
        out.provenance[strategy] = Provenance(
            source="real-hub demo (embedded)",
            converter="candidates",
            embedder=embedder,
            strategy=strategy,
            pairs_per_prompt=1,
            seed=0,
            license="apache-2.0",
            versions=library_versions(),
        )
        out.statistics[strategy] = Statistics(
            rows_in=len(candidates),
            rows_out={"train": len(pairs)},
            skipped=dict(report.skipped),
            similarity=summarize(pairs["similarity"]),
        )
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

    def put(self, name: str, source: PairSource) -> None:
        """Register an already loaded source under ``name``."""
        self._items[name] = source


def metadata_markdown(source: PairSource) -> tuple[str, str]:
    """The card's provenance and statistics of every config, as two markdown tables."""
    prov_rows, stat_rows = [], []
    for config in source.configs:
        for k, v in source.provenance.get(config, Provenance()).to_dict().items():
            prov_rows.append(f"| {config} | {k} | {_md(v)} |")
        for k, v in source.statistics.get(config, Statistics()).to_dict().items():
            if isinstance(v, dict):
                stat_rows += [f"| {config} | {k}.{kk} | {_md(vv)} |" for kk, vv in v.items()]
            else:
                stat_rows.append(f"| {config} | {k} | {_md(v)} |")
    head = "| config | {} | value |\n| --- | --- | --- |\n"
    prov = head.format("field") + "\n".join(prov_rows) if prov_rows else "_no provenance recorded_"
    stats = head.format("statistic") + "\n".join(stat_rows) if stat_rows else "_no statistics recorded_"
    return prov, stats


def _md(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")
