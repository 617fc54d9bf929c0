"""The Gradio app of the Space (``spaces/app.py``) and of ``real-hub space``: browse, plot, annotate.

Every event handler is a plain function of the page's inputs (the source name, the filters, a position)
with its own ``api_name``, so the page and ``gradio_client`` call the same endpoints. Loaded sets live in
a per-app :class:`~real_hub.browse.SourceCache`; only the visible page of the table goes to the browser.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import RealHubError
from .annotation import (
    LABELS_DIR_ENV,
    LabelStore,
    a_is_chosen,
    annotator_agreement,
    labels_scheduler,
    pair_id,
)
from .browse import (
    DEMO,
    PairFilter,
    SourceCache,
    heatmap_html,
    margin_points,
    metadata_markdown,
    response_text,
    similarity_histogram,
    turns_html,
    word_diff,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 20
NO_HEATMAP = (
    "<p><i>No candidate embeddings in this set: the heatmap needs the candidates' embeddings.</i></p>"
)
TABLE_COLUMNS = ["#", "row", "similarity", "margin", "domain", "prompt", "chosen", "rejected"]
CSS = """
.rh-error { border: 2px solid #d9534f; background: #fdf0ef; padding: 0.6em 1em; border-radius: 6px; }
.rh-turn { border-left: 3px solid #9ab; padding: 0.2em 0.6em; margin: 0.3em 0; }
.rh-user { border-color: #4a90d9; } .rh-assistant { border-color: #5cb85c; }
.rh-heatmap td, .rh-heatmap th { padding: 2px 6px; font-size: 0.85em; text-align: center; }
"""


def error_box(message: str) -> str:
    """Markdown/HTML of an error shown in the page."""
    return f'<div class="rh-error">⚠️ {message}</div>'


def _filter(
    config: str, split: str, smin: Any, smax: Any, mmin: Any, mmax: Any, domain: Any, search: Any
) -> PairFilter:
    def bound(v: Any, edge: float) -> float | None:
        if v is None or str(v).strip() == "":
            return None
        try:
            v = float(v)
        except ValueError as err:
            raise gr.Error(f"a bound must be a number, got {v!r}") from err
        return None if v == edge else v

    return PairFilter(
        config=config or "",
        split=split or "train",
        similarity_min=bound(smin, -1.0),
        similarity_max=bound(smax, 1.0),
        margin_min=bound(mmin, float("nan")),
        margin_max=bound(mmax, float("nan")),
        domain=domain or None,
        search=search or "",
    )


def build_app(
    source: str | None = None,
    *,
    labels_dir: str | Path | None = None,
    encoder: Any = None,
    page_size: int = PAGE_SIZE,
    seed: int = 0,
    scheduler: Any = "env",
) -> Any:
    """Build the Space's ``gr.Blocks``.

    Args:
        source: Curated set shown first: Hub id, folder written by ``save_curated``, or ``None`` (the demo).
        labels_dir: Folder for annotation labels (default ``$REAL_HUB_LABELS_DIR`` or ``./labels``).
        encoder: Embedding model for the demo (default all-MiniLM-L6-v2); tests pass a tiny one.
        page_size: Rows per table page.
        seed: Seed of the A/B order in annotation mode.
        scheduler: A ``CommitScheduler`` for the labels, ``None``, or ``"env"`` to make one when
            ``$REAL_HUB_LABELS_REPO`` is set.
    """
    import pandas as pd

    cache = SourceCache(encoder=encoder)
    folder = Path(labels_dir or os.environ.get(LABELS_DIR_ENV) or "labels")
    folder.mkdir(parents=True, exist_ok=True)
    if scheduler == "env":
        scheduler = labels_scheduler(folder)
    store = LabelStore(folder, scheduler=scheduler)
    initial = (source or "").strip() or DEMO

    def get(name: str) -> Any:
        try:
            return cache.get(name)
        except RealHubError as err:
            raise gr.Error(str(err)) from err

    # ------------------------------------------------------------------------------------ handlers

    def load(name: str) -> tuple:
        """Load a set: status, configs, splits, domains, provenance, statistics."""
        try:
            src = cache.get(name)
        except Exception as err:  # unknown repo, missing columns, unreadable files: say so in the page
            message = str(err) if isinstance(err, RealHubError) else f"{type(err).__name__}: {err}"
            logger.warning("Could not load %r: %s", name, message)
            gr.Warning(f"Could not load {name or DEMO}: {message}")
            empty = gr.Dropdown(choices=[], value=None)
            return (
                error_box(f"Could not load <b>{name or DEMO}</b>: {message}"),
                empty,
                empty,
                empty,
                "",
                "",
            )
        configs = list(src.configs)
        config = configs[0]
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

    def choose_config(name: str, config: str) -> tuple:
        """Splits and domains of the chosen config."""
        src = get(name)
        if config not in src.configs:
            return gr.Dropdown(), gr.Dropdown()
        splits = src.splits(config)
        return (
            gr.Dropdown(choices=splits, value=splits[0]),
            gr.Dropdown(choices=["", *src.domains(config, splits[0])], value=""),
        )

    def table(name: str, config: str, split: str, smin, smax, mmin, mmax, domain, search, page) -> tuple:
        """One page of the filtered pairs: (table, page, summary)."""
        src = get(name)
        if config not in src.configs:
            return pd.DataFrame(columns=TABLE_COLUMNS), 0, "no config selected"
        f = _filter(config, split, smin, smax, mmin, mmax, domain, search)
        rows, total, page = src.page(f, int(page or 0), page_size)
        pages = max(1, -(-total // page_size))
        frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
        return frame, page, f"{total} pair(s) match; page {page + 1} of {pages}"

    def first_page(*args: Any) -> tuple:
        return table(*args, 0)

    def next_page(*args: Any) -> tuple:
        return table(*args[:-1], int(args[-1] or 0) + 1)

    def previous_page(*args: Any) -> tuple:
        return table(*args[:-1], int(args[-1] or 0) - 1)

    def pair(name: str, config: str, split: str, smin, smax, mmin, mmax, domain, search, position) -> tuple:
        """The pair at ``position`` of the filtered list, its diff and its candidates' heatmap."""
        src = get(name)
        if config not in src.configs:
            return 0, "no config selected", "", [], [], ""
        f = _filter(config, split, smin, smax, mmin, mmax, domain, search)
        item, position, total = src.pair(f, int(position or 0))
        if item is None:
            return 0, "No pair matches the filters.", "", [], [], ""
        chosen, rejected = word_diff(response_text(item["chosen"]), response_text(item["rejected"]))
        header = _pair_header(item, position, total)
        sim = src.candidate_similarities(item)
        if sim is None:
            heat = NO_HEATMAP
        else:
            heat = heatmap_html(sim, item.get("chosen_index"), item.get("rejected_index"))
        return position, header, turns_html(item["prompt"]), chosen, rejected, heat

    def next_pair(*args: Any) -> tuple:
        return pair(*args[:-1], int(args[-1] or 0) + 1)

    def previous_pair(*args: Any) -> tuple:
        return pair(*args[:-1], int(args[-1] or 0) - 1)

    def select_row(frame: Any, evt: gr.SelectData) -> int:
        """The filtered-list position of the clicked table row."""
        value = evt.row_value[0] if evt.row_value else None
        if value is None:
            value = frame.iloc[evt.index[0]]["#"]
        return int(value)

    def plots(name: str) -> tuple:
        """Similarity histogram per strategy and margin against similarity."""
        src = get(name)
        hist = pd.DataFrame(similarity_histogram(src), columns=["similarity", "pairs", "strategy"])
        points = pd.DataFrame(margin_points(src), columns=["similarity", "margin", "strategy"])
        note = (
            ""
            if len(points)
            else "_No margins (rewards or scores) in this set: nothing to plot against similarity._"
        )
        return hist, points, note

    # ------------------------------------------------------------------------------------ annotation

    def _pairs_of(name: str, config: str, split: str) -> Any:
        src = get(name)
        if config not in src.configs:
            raise gr.Error("choose a config in the Browse tab first")
        return src.view(config, split or src.splits(config)[0]).dataset

    def annotation(name: str, config: str, split: str, annotator: str) -> tuple:
        """The annotator's next unlabelled pair: key, prompt, A, B, progress, agreement."""
        annotator = (annotator or "").strip()
        if not annotator:
            return "", "", "Enter your name and press Start.", "", "", ""
        ds = _pairs_of(name, config, split)
        records = [
            r for r in store.records() if r.get("config") == config and r.get("source") == (name or DEMO)
        ]
        mine = {r["pair_id"] for r in records if r["annotator"] == annotator}
        agreement, compared = annotator_agreement(records)
        n_annotators = len({r["annotator"] for r in records})
        agree = (
            f"Agreement between annotators: {agreement:.0%} of {compared} comparison(s)"
            if agreement is not None
            else f"Agreement between annotators: no pair has two answers yet ({n_annotators} annotator(s))."
        )
        found = None
        for row in range(len(ds)):
            item = ds[row]
            pid = pair_id(item["prompt"], item["chosen"], item["rejected"])
            if pid not in mine:
                found = (row, pid, item)
                break
        progress = f"**{annotator}**: labelled {len(mine)} / to label {len(ds) - len(mine)}"
        if found is None:
            return "", "", "All pairs are labelled. Thank you!", "", progress, agree
        row, pid, item = found
        a, b = ("chosen", "rejected") if a_is_chosen(pid, seed) else ("rejected", "chosen")
        key = f"{row}:{pid}"
        return key, turns_html(item["prompt"]), turns_html(item[a]), turns_html(item[b]), progress, agree

    def label(choice: str, name: str, config: str, split: str, annotator: str, key: str) -> tuple:
        annotator = (annotator or "").strip()
        if not annotator:
            raise gr.Error("enter an annotator name before labelling")
        if not key:
            return annotation(name, config, split, annotator)
        ds = _pairs_of(name, config, split)
        row_text, pid = key.split(":", 1)
        item = ds[int(row_text)]
        if pair_id(item["prompt"], item["chosen"], item["rejected"]) != pid:
            raise gr.Error("the pair shown is no longer in this set; press Start again")
        a_side = "chosen" if a_is_chosen(pid, seed) else "rejected"
        extra = {
            "source": name or DEMO,
            "config": config,
            "split": split,
            "row": int(row_text),
            "order": [a_side, "rejected" if a_side == "chosen" else "chosen"],  # sides shown as A, B
            "prompt": item["prompt"],
            "chosen": item["chosen"],
            "rejected": item["rejected"],
        }
        store.append(pid=pid, annotator=annotator, label=choice, a_side=a_side, extra=extra)
        return annotation(name, config, split, annotator)

    # ------------------------------------------------------------------------------------ layout

    with gr.Blocks(title="real-hub: curated preference pairs") as app:
        gr.Markdown(
            "# real-hub: curated preference pairs\n"
            "Browse pairs selected by REAL (least similar responses) and rewarded by Dr.SoW, "
            "plot them, and label them."
        )
        with gr.Row():
            src_box = gr.Textbox(
                value=initial,
                label="Source",
                placeholder="Hub dataset id, local folder written by save_curated, or 'demo'",
                scale=4,
                elem_id="rh-source",
            )
            load_btn = gr.Button("Load", scale=1, elem_id="rh-load")
        status = gr.Markdown(elem_id="rh-status")
        with gr.Tabs():
            with gr.Tab("Browse"):
                with gr.Row():
                    config = gr.Dropdown(label="Config (strategy)", choices=[], elem_id="rh-config")
                    split = gr.Dropdown(label="Split", choices=[], elem_id="rh-split")
                    domain = gr.Dropdown(label="Domain", choices=[""], value="", elem_id="rh-domain")
                    search = gr.Textbox(label="Search text (Enter)", elem_id="rh-search")
                with gr.Row():
                    smin = gr.Slider(-1, 1, value=-1, step=0.01, label="Similarity ≥", elem_id="rh-smin")
                    smax = gr.Slider(-1, 1, value=1, step=0.01, label="Similarity ≤", elem_id="rh-smax")
                    mmin = gr.Textbox(label="Margin ≥ (Enter)", placeholder="any", elem_id="rh-mmin")
                    mmax = gr.Textbox(label="Margin ≤ (Enter)", placeholder="any", elem_id="rh-mmax")
                grid = gr.Dataframe(
                    headers=TABLE_COLUMNS, interactive=False, wrap=True, label="Pairs", elem_id="rh-table"
                )
                with gr.Row():
                    prev_page_btn = gr.Button("◀ Page", elem_id="rh-prev-page")
                    page = gr.Number(value=0, precision=0, label="Page (from 0)", elem_id="rh-page")
                    next_page_btn = gr.Button("Page ▶", elem_id="rh-next-page")
                    summary = gr.Markdown(elem_id="rh-summary")
                with gr.Row():
                    prev_btn = gr.Button("◀ Previous pair", elem_id="rh-prev")
                    position = gr.Number(value=0, precision=0, label="Pair # (from 0)", elem_id="rh-position")
                    next_btn = gr.Button("Next pair ▶", elem_id="rh-next")
                header = gr.Markdown(elem_id="rh-pair-header")
                prompt = gr.HTML(label="Prompt", elem_id="rh-prompt")
                with gr.Row():
                    colors = {"only here": "#f6c85f"}
                    chosen = gr.HighlightedText(
                        label="Chosen (words not in rejected highlighted)",
                        color_map=colors,
                        show_inline_category=False,
                        elem_id="rh-chosen",
                    )
                    rejected = gr.HighlightedText(
                        label="Rejected (words not in chosen highlighted)",
                        color_map=colors,
                        show_inline_category=False,
                        elem_id="rh-rejected",
                    )
            with gr.Tab("Plots"):
                hist = gr.BarPlot(
                    x="similarity", y="pairs", color="strategy", title="Similarity per strategy"
                )
                scatter = gr.ScatterPlot(
                    x="similarity", y="margin", color="strategy", title="Reward margin against similarity"
                )
                scatter_note = gr.Markdown()
                gr.Markdown("### Candidates of the selected pair's prompt")
                heat = gr.HTML(elem_id="rh-heatmap")
            with gr.Tab("Card"):
                gr.Markdown("### Provenance")
                prov_md = gr.Markdown(elem_id="rh-provenance")
                gr.Markdown("### Statistics")
                stats_md = gr.Markdown(elem_id="rh-statistics")
            with gr.Tab("Annotate"):
                gr.Markdown(
                    "Label the pairs of the config chosen in *Browse*: which response is better? "
                    "A and B are in a random order; labels are appended, never overwritten."
                )
                with gr.Row():
                    annotator = gr.Textbox(label="Annotator name", elem_id="rh-annotator")
                    start_btn = gr.Button("Start / resume", elem_id="rh-start")
                progress = gr.Markdown(elem_id="rh-progress")
                ann_key = gr.Textbox(visible=False, elem_id="rh-ann-key")
                ann_prompt = gr.HTML(elem_id="rh-ann-prompt")
                with gr.Row():
                    ann_a = gr.HTML(label="A", elem_id="rh-ann-a")
                    ann_b = gr.HTML(label="B", elem_id="rh-ann-b")
                with gr.Row():
                    buttons = {
                        "A": gr.Button("A is better", elem_id="rh-label-a"),
                        "B": gr.Button("B is better", elem_id="rh-label-b"),
                        "tie": gr.Button("Tie", elem_id="rh-label-tie"),
                        "skip": gr.Button("Skip", elem_id="rh-label-skip"),
                    }
                agreement = gr.Markdown(elem_id="rh-agreement")

        # -------------------------------------------------------------------------------- events
        filters = [src_box, config, split, smin, smax, mmin, mmax, domain, search]
        table_out = [grid, page, summary]
        pair_out = [position, header, prompt, chosen, rejected, heat]
        load_out = [status, config, split, domain, prov_md, stats_md]

        def _refresh(event: Any, suffix: str) -> None:
            (
                event.then(first_page, filters, table_out, api_name=f"table_{suffix}").then(
                    lambda *a: pair(*a, 0), filters, pair_out, api_name=f"pair_{suffix}"
                )
            )

        for trigger, suffix in ((app.load, "start"), (load_btn.click, "load"), (src_box.submit, "submit")):
            ev = trigger(load, src_box, load_out, api_name=f"load_{suffix}" if suffix != "load" else "load")
            _refresh(ev, suffix)
            ev.then(plots, src_box, [hist, scatter, scatter_note], api_name=f"plots_{suffix}")
        cfg_ev = config.input(choose_config, [src_box, config], [split, domain], api_name="choose_config")
        _refresh(cfg_ev, "config")
        gr.on(
            [split.input, domain.input, search.submit, smin.release, smax.release, mmin.submit, mmax.submit],
            first_page,
            filters,
            table_out,
            api_name="filter",
        ).then(lambda *a: pair(*a, 0), filters, pair_out, api_name="pair_filter")
        next_page_btn.click(next_page, [*filters, page], table_out, api_name="next_page")
        prev_page_btn.click(previous_page, [*filters, page], table_out, api_name="previous_page")
        page.submit(table, [*filters, page], table_out, api_name="goto_page")
        grid.select(select_row, grid, position, api_name="select_row").then(
            pair, [*filters, position], pair_out, api_name="pair_select"
        )
        position.submit(pair, [*filters, position], pair_out, api_name="pair")
        next_btn.click(next_pair, [*filters, position], pair_out, api_name="next_pair")
        prev_btn.click(previous_pair, [*filters, position], pair_out, api_name="previous_pair")

        ann_in = [src_box, config, split, annotator]
        ann_out = [ann_key, ann_prompt, ann_a, ann_b, progress, agreement]
        start_btn.click(annotation, ann_in, ann_out, api_name="annotation")
        annotator.submit(annotation, ann_in, ann_out, api_name="annotation_submit")
        for choice, button in buttons.items():
            button.click(
                lambda *a, _c=choice: label(_c, *a),
                [*ann_in, ann_key],
                ann_out,
                api_name=f"label_{choice.lower()}",
            )
    app.real_hub_cache = cache  # for tests and callers that want the loaded sets
    app.real_hub_store = store
    return app


def _pair_header(item: dict[str, Any], position: int, total: int) -> str:
    def fmt(v: Any) -> str:
        return "–" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    parts = [f"**Pair {position + 1} of {total}** (row {item['row']})"]
    for key in ("similarity", "margin", "chosen_reward", "rejected_reward", "chosen_score", "rejected_score"):
        if key in item:
            parts.append(f"{key}: `{fmt(item[key])}`")
    if item.get("domain"):
        parts.append(f"domain: `{item['domain']}`")
    if "strategy" in item:
        parts.append(f"strategy: `{item['strategy']}`")
    return " · ".join(parts)


def launch(source: str | None = None, **kwargs: Any) -> Any:
    """Build the app and launch it (keyword arguments go to ``Blocks.launch``)."""
    app = build_app(source, **{k: kwargs.pop(k) for k in ("labels_dir", "encoder") if k in kwargs})
    app.launch(css=CSS, **kwargs)
    return app
