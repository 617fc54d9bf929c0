"""The Space's endpoints: what each event of the page computes, as methods of :class:`SpaceHandlers`.

Every handler is a plain function of the page's inputs (the source name, the filters, a position), so the
page and ``gradio_client`` call the same endpoints; ``app.py`` only lays the page out and wires events to
these. The data work is ``browse.py``'s and ``queue.py``'s; how values look is ``render.py``'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from ..errors import RealHubError
from ..schema import PREFERENCE_COLUMNS
from .browse import (
    DEMO,
    PairFilter,
    PairSource,
    SourceCache,
    candidate_similarities,
    margin_points,
    metadata_markdown,
    similarity_histogram,
)
from .budget import budget_curve_view
from .duplicates import DUPLICATE_COLUMNS, duplicate_groups
from .queue import AnnotationQueue, AnnotationQueues
from .render import completion_text, error_box, heatmap_html, pair_header, turns_html, word_diff

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ["#", "row", "similarity", "margin", "domain", *PREFERENCE_COLUMNS]
NO_HEATMAP = (
    "<p><i>No candidate embeddings behind this pair: the heatmap reads the <code>candidate_similarity</code>"
    " column that <code>SelectPairs</code> writes when it selects pairs from candidates.</i></p>"
)


@dataclass(frozen=True)
class FilterInputs:
    """The page's filter controls as its events pass them (``FIELDS`` in order), before the position."""

    source: str
    config: str
    split: str
    similarity_min: Any
    similarity_max: Any
    margin_min: Any
    margin_max: Any
    domain: Any
    search: Any

    @classmethod
    def with_position(cls, args: tuple[Any, ...]) -> tuple[FilterInputs, Any]:
        """The filters and the page or pair position that follows them in an event's inputs."""
        return cls(*args[:-1]), args[-1]

    def pair_filter(self) -> PairFilter:
        """The :class:`PairFilter` these controls set (a slider at its end is an open bound)."""
        return PairFilter(
            config=self.config or "",
            split=self.split or "train",
            similarity_min=_bound(self.similarity_min, -1.0),
            similarity_max=_bound(self.similarity_max, 1.0),
            margin_min=_bound(self.margin_min, float("nan")),
            margin_max=_bound(self.margin_max, float("nan")),
            domain=self.domain or None,
            search=self.search or "",
        )


def _bound(value: Any, edge: float) -> float | None:
    """A filter bound: None when empty or at the slider's end, else the number (a page error if not one)."""
    if value is None or str(value).strip() == "":
        return None
    try:
        number = float(value)
    except ValueError as err:
        raise gr.Error(f"a bound must be a number, got {value!r}") from err
    return None if number == edge else number


class SpaceHandlers:
    """The endpoints of one app: loaded sets in ``cache``, annotations through ``queues``.

    Args:
        cache: The loaded curated sets, by name.
        queues: The annotation queues and their store.
        page_size: Rows per table page.
    """

    def __init__(self, cache: SourceCache, queues: AnnotationQueues, page_size: int = 20) -> None:
        self.cache = cache
        self.queues = queues
        self.page_size = page_size

    def get(self, name: str) -> PairSource:
        """The loaded set ``name``; a user-facing error in the page if it cannot be loaded."""
        try:
            return self.cache.get(name)
        except RealHubError as err:
            raise gr.Error(str(err)) from err

    # ------------------------------------------------------------------------------------ browsing

    def load(self, name: str) -> tuple:
        """Load a set: status, configs (``dissimilar`` selected when present), splits, domains, card."""
        try:
            src = self.cache.get(name)
        except Exception as err:  # unknown repo, missing columns, unreadable files: say so in the page
            message = str(err) if isinstance(err, RealHubError) else f"{type(err).__name__}: {err}"
            logger.warning("Could not load %r: %s", name, message)
            gr.Warning(f"Could not load {name or DEMO}: {message}")
            empty = gr.Dropdown(choices=[], value=None)
            return error_box(f"Could not load <b>{name or DEMO}</b>: {message}"), empty, empty, empty, "", ""
        configs = src.config_names()
        config = src.first_config()
        splits = src.splits(config)
        prov, stats = metadata_markdown(src)
        sizes = ", ".join(f"{c}: {sum(len(d) for d in src.configs[c].values())}" for c in configs)
        status = f"Loaded **{src.name}**: {len(configs)} config(s) ({sizes} pairs)."
        return (
            status,
            gr.Dropdown(choices=configs, value=config),
            gr.Dropdown(choices=splits, value=splits[0]),
            gr.Dropdown(choices=["", *src.domains(config, splits[0])], value=""),
            prov,
            stats,
        )

    def choose_config(self, name: str, config: str) -> tuple:
        """Splits and domains of the chosen config."""
        src = self.get(name)
        if config not in src.configs:
            return gr.Dropdown(), gr.Dropdown()
        splits = src.splits(config)
        return (
            gr.Dropdown(choices=splits, value=splits[0]),
            gr.Dropdown(choices=["", *src.domains(config, splits[0])], value=""),
        )

    def table(self, *args: Any) -> tuple:
        """One page of the filtered pairs: (table, page, summary). Inputs: :class:`FilterInputs`, page."""
        filters, page = FilterInputs.with_position(args)
        src = self.get(filters.source)
        if filters.config not in src.configs:
            return pd.DataFrame(columns=TABLE_COLUMNS), 0, "no config selected"
        rows, total, page = src.page(filters.pair_filter(), int(page or 0), self.page_size)
        pages = max(1, -(-total // self.page_size))
        frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
        return frame, page, f"{total} pair(s) match; page {page + 1} of {pages}"

    def first_page(self, *args: Any) -> tuple:
        """The first page of the filtered pairs."""
        return self.table(*args, 0)

    def next_page(self, *args: Any) -> tuple:
        """The page after the one shown (the last argument)."""
        return self.table(*args[:-1], int(args[-1] or 0) + 1)

    def previous_page(self, *args: Any) -> tuple:
        """The page before the one shown (the last argument)."""
        return self.table(*args[:-1], int(args[-1] or 0) - 1)

    def pair(self, *args: Any) -> tuple:
        """The pair at a position of the filtered list, its word diff and its candidates' heatmap.

        Inputs: :class:`FilterInputs`, then the position.
        """
        filters, position = FilterInputs.with_position(args)
        src = self.get(filters.source)
        if filters.config not in src.configs:
            return 0, "no config selected", "", [], [], ""
        item, position, total = src.pair(filters.pair_filter(), int(position or 0))
        if item is None:
            return 0, "No pair matches the filters.", "", [], [], ""
        chosen, rejected = word_diff(completion_text(item["chosen"]), completion_text(item["rejected"]))
        sim = candidate_similarities(item)
        heat = (
            NO_HEATMAP
            if sim is None
            else heatmap_html(sim, item.get("chosen_index"), item.get("rejected_index"))
        )
        header = pair_header(item, position, total)
        return position, header, turns_html(item["prompt"]), chosen, rejected, heat

    def duplicates(self, name: str, config: str, split: str, threshold: Any) -> tuple:
        """The duplicate prompt groups of the chosen config and split: (table, summary)."""
        src = self.get(name)
        if config not in src.configs:
            return pd.DataFrame(columns=DUPLICATE_COLUMNS), "no config selected"
        try:
            return duplicate_groups(src.view(config, split).dataset, float(threshold), self.cache.encoder)
        except RealHubError as err:
            raise gr.Error(str(err)) from err

    def first_pair(self, *args: Any) -> tuple:
        """The first pair of the filtered list."""
        return self.pair(*args, 0)

    def next_pair(self, *args: Any) -> tuple:
        """The pair after the one shown (the last argument)."""
        return self.pair(*args[:-1], int(args[-1] or 0) + 1)

    def previous_pair(self, *args: Any) -> tuple:
        """The pair before the one shown (the last argument)."""
        return self.pair(*args[:-1], int(args[-1] or 0) - 1)

    @staticmethod
    def select_row(frame: Any, evt: gr.SelectData) -> int:
        """The filtered-list position of the clicked table row."""
        value = evt.row_value[0] if evt.row_value else None
        if value is None:
            value = frame.iloc[evt.index[0]]["#"]
        return int(value)

    def plots(self, name: str) -> tuple:
        """Similarity histogram per strategy and margin against similarity."""
        src = self.get(name)
        hist = pd.DataFrame(similarity_histogram(src), columns=["similarity", "pairs", "strategy"])
        points = pd.DataFrame(margin_points(src), columns=["similarity", "margin", "strategy"])
        note = (
            ""
            if len(points)
            else "_No margins (rewards or scores) in this set: nothing to plot against similarity._"
        )
        return hist, points, note

    @staticmethod
    def budget_curve(name: str, folder: str = "") -> tuple:
        """The budget curve (tables, plot) in ``folder``, else in the loaded source when it is a folder."""
        return budget_curve_view((folder or "").strip() or name)

    # ------------------------------------------------------------------------------------ annotation

    def queue(self, name: str, config: str, split: str) -> AnnotationQueue:
        """The annotation queue of a config's split (``split`` empty: the config's first)."""
        src = self.get(name)
        if config not in src.configs:
            raise gr.Error("choose a config in the Browse tab first")
        split = split or src.splits(config)[0]
        pairs = src.view(config, split).dataset
        return self.queues.get(pairs, source=name or DEMO, config=config, split=split)

    def annotation(self, name: str, config: str, split: str, annotator: str) -> tuple:
        """The annotator's next unanswered pair: key, prompt, A, B, progress, agreement."""
        annotator = (annotator or "").strip()
        if not annotator:
            return "", "", "Enter your name and press Start.", "", "", ""
        queue = self.queue(name, config, split)
        agreement, compared = queue.agreement()
        agree = (
            f"Agreement between annotators: {agreement:.0%} of {compared} comparison(s)"
            if agreement is not None
            else "Agreement between annotators: no pair has two answers yet "
            f"({queue.annotators()} annotator(s))."
        )
        done, left = queue.progress(annotator)
        progress = f"**{annotator}**: labelled {done} / to label {left}"
        item = queue.next(annotator)
        if item is None:
            return "", "", "All pairs are annotated. Thank you!", "", progress, agree
        a, b = turns_html(item.pair[item.a_side]), turns_html(item.pair[item.b_side])
        return item.key, turns_html(item.pair["prompt"]), a, b, progress, agree

    def answer(self, label: str, name: str, config: str, split: str, annotator: str, key: str) -> tuple:
        """Store ``annotator``'s answer (``A``, ``B``, ``tie``, ``skip``) to the pair shown; the next pair."""
        annotator = (annotator or "").strip()
        if not annotator:
            raise gr.Error("enter an annotator name before labelling")
        if not key:
            return self.annotation(name, config, split, annotator)
        queue = self.queue(name, config, split)
        item = queue.item(key)
        if item is None:
            raise gr.Error("the pair shown is no longer in this set; press Start again")
        self.queues.answer(queue, item, annotator, label)
        return self.annotation(name, config, split, annotator)
