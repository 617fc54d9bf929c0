"""The Gradio app of the Space (``spaces/app.py``) and of ``real-hub space``: its layout and event wiring.

What each event computes lives in :mod:`~real_hub.space.handlers`; every event has its own ``api_name``,
so the page and ``gradio_client`` call the same endpoints. Loaded sets live in a per-app
:class:`~real_hub.space.browse.SourceCache`; only the visible page of the table goes to the browser.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import gradio as gr

from .annotation import ANNOTATIONS_DIR_ENV, AnnotationStore, annotation_scheduler
from .browse import DEMO, SourceCache
from .duplicates import DUPLICATE_COLUMNS
from .handlers import TABLE_COLUMNS, FilterInputs, SpaceHandlers
from .queue import AnnotationQueues
from .render import ONLY_HERE

PAGE_SIZE = 20
# gradio's HighlightedText lays its spans out as flex items with ``word-break: break-all``, which cuts
# words across lines ("than t / hinking"): the diffs flow as text instead and wrap between words.
# The table gives the three texts the room, so the start of chosen and rejected shows beside the prompt.
CSS = """
.rh-error { border: 2px solid #d9534f; background: #fdf0ef; padding: 0.6em 1em; border-radius: 6px; }
.rh-turn { border-left: 3px solid #9ab; padding: 0.2em 0.6em; margin: 0.3em 0; }
.rh-user { border-color: #4a90d9; } .rh-assistant { border-color: #5cb85c; }
.rh-heatmap td, .rh-heatmap th { padding: 2px 6px; font-size: 0.85em; text-align: center; }
#rh-chosen .textfield, #rh-rejected .textfield {
  display: block; word-break: normal; overflow-wrap: break-word; white-space: normal;
}
#rh-chosen .token-container, #rh-rejected .token-container { display: inline; }
#rh-chosen .token, #rh-rejected .token { display: inline; }
"""
COLUMN_WIDTHS = ["4%", "5%", "9%", "7%", "7%", "22%", "23%", "23%"]


def build_app(
    source: str | None = None,
    *,
    annotations_dir: str | Path | None = None,
    encoder: Any = None,
    page_size: int = PAGE_SIZE,
    seed: int = 0,
    scheduler: Any = "env",
    preload: bool = False,
) -> Any:
    """Build the Space's ``gr.Blocks``.

    Args:
        source: Curated set shown first: Hub id, folder written by ``save_curated``, or ``None`` (the demo).
        annotations_dir: Folder for annotations (default ``$REAL_HUB_LABELS_DIR`` or ``./labels``).
        encoder: Embedding model for the demo (default all-MiniLM-L6-v2); tests pass a tiny one.
        page_size: Rows per table page.
        seed: Seed of the A/B order in annotation mode.
        scheduler: A ``CommitScheduler`` for the annotations, ``None``, or ``"env"`` to make one when
            ``$REAL_HUB_LABELS_REPO`` is set.
        preload: Load ``source`` now, so that an unknown folder or repo fails here, before any server starts
            (``real-hub space``), rather than on the page.
    """
    folder = Path(annotations_dir or os.environ.get(ANNOTATIONS_DIR_ENV) or "labels")
    folder.mkdir(parents=True, exist_ok=True)
    if scheduler == "env":
        scheduler = annotation_scheduler(folder)
    store = AnnotationStore(folder, scheduler=scheduler)
    cache = SourceCache(encoder=encoder)
    initial = (source or "").strip() or DEMO
    if preload and initial != DEMO:
        cache.get(initial)
    h = SpaceHandlers(cache, AnnotationQueues(store, seed), page_size)

    with gr.Blocks(title="real-hub: curated preference pairs") as app:
        page = _header(initial)
        with gr.Tabs():
            with gr.Tab("Browse"):
                page.update(_browse_tab())
            with gr.Tab("Plots"):
                page.update(_plots_tab())
            with gr.Tab("Duplicates"):
                page.update(_duplicates_tab())
            with gr.Tab("Budget curve"):
                page.update(_budget_curve_tab())
            with gr.Tab("Card"):
                page.update(_card_tab())
            with gr.Tab("Annotate"):
                page.update(_annotate_tab())
        _wire_browsing(app, h, page)
        _wire_annotation(h, page)
    app.real_hub_cache = h.cache  # for tests and callers that want the loaded sets
    app.real_hub_store = store
    return app


def launch(source: str | None = None, **kwargs: Any) -> Any:
    """Build the app and launch it.

    ``annotations_dir`` and ``encoder`` go to :func:`build_app`, the other keywords to ``Blocks.launch``.
    """
    options = {k: kwargs.pop(k) for k in ("annotations_dir", "encoder") if k in kwargs}
    app = build_app(source, preload=True, **options)
    app.launch(css=CSS, **kwargs)
    return app


# ------------------------------------------------------------------------------------------ the page's parts
# Each part lays out its components and returns them by name; the wiring below reads them from one dict.


def _header(initial: str) -> dict[str, Any]:
    gr.Markdown(
        "# real-hub: curated preference pairs\n"
        "Browse pairs selected by REAL (least similar responses) and rewarded by Dr.SoW, "
        "plot them, and annotate them."
    )
    with gr.Row():
        source = gr.Textbox(
            value=initial,
            label="Source",
            placeholder="Hub dataset id, local folder written by save_curated, or 'demo'",
            scale=4,
            elem_id="rh-source",
        )
        load = gr.Button("Load", scale=1, elem_id="rh-load")
    return {"source": source, "load": load, "status": gr.Markdown(elem_id="rh-status")}


def _browse_tab() -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Row():
        c["config"] = gr.Dropdown(label="Config (strategy)", choices=[], elem_id="rh-config")
        c["split"] = gr.Dropdown(label="Split", choices=[], elem_id="rh-split")
        c["domain"] = gr.Dropdown(label="Domain", choices=[""], value="", elem_id="rh-domain")
        c["search"] = gr.Textbox(label="Search text (Enter)", elem_id="rh-search")
    with gr.Row():
        c["similarity_min"] = gr.Slider(-1, 1, value=-1, step=0.01, label="Similarity ≥", elem_id="rh-smin")
        c["similarity_max"] = gr.Slider(-1, 1, value=1, step=0.01, label="Similarity ≤", elem_id="rh-smax")
        c["margin_min"] = gr.Textbox(label="Margin ≥ (Enter)", placeholder="any", elem_id="rh-mmin")
        c["margin_max"] = gr.Textbox(label="Margin ≤ (Enter)", placeholder="any", elem_id="rh-mmax")
    c["grid"] = gr.Dataframe(
        headers=TABLE_COLUMNS,
        interactive=False,
        wrap=True,
        column_widths=COLUMN_WIDTHS,
        label="Pairs",
        elem_id="rh-table",
    )
    with gr.Row():
        c["previous_page"] = gr.Button("◀ Page", elem_id="rh-prev-page")
        c["page"] = gr.Number(value=0, precision=0, label="Page (from 0)", elem_id="rh-page")
        c["next_page"] = gr.Button("Page ▶", elem_id="rh-next-page")
        c["summary"] = gr.Markdown(elem_id="rh-summary")
    with gr.Row():
        c["previous_pair"] = gr.Button("◀ Previous pair", elem_id="rh-prev")
        c["position"] = gr.Number(value=0, precision=0, label="Pair # (from 0)", elem_id="rh-position")
        c["next_pair"] = gr.Button("Next pair ▶", elem_id="rh-next")
    c["pair_header"] = gr.Markdown(elem_id="rh-pair-header")
    c["prompt"] = gr.HTML(label="Prompt", elem_id="rh-prompt")
    with gr.Row():
        colors = {ONLY_HERE: "#f6c85f"}
        for side, other in (("chosen", "rejected"), ("rejected", "chosen")):
            c[side] = gr.HighlightedText(
                label=f"{side.capitalize()} (words not in {other} highlighted)",
                color_map=colors,
                show_inline_category=False,
                elem_id=f"rh-{side}",
            )
    return c


def _plots_tab() -> dict[str, Any]:
    hist = gr.BarPlot(x="similarity", y="pairs", color="strategy", title="Similarity per strategy")
    scatter = gr.ScatterPlot(
        x="similarity", y="margin", color="strategy", title="Reward margin against similarity"
    )
    note = gr.Markdown()
    gr.Markdown("### Candidates of the selected pair's prompt")
    return {"hist": hist, "scatter": scatter, "scatter_note": note, "heat": gr.HTML(elem_id="rh-heatmap")}


def _duplicates_tab() -> dict[str, Any]:
    gr.Markdown(
        "Prompts of the config and split chosen in *Browse* that duplicate one another: exact "
        "copies (case and whitespace aside) and near-duplicates at cosine ≥ the threshold "
        "(`real_hub.deduplicate`; static MiniLM embeddings, distilled on first use)."
    )
    with gr.Row():
        threshold = gr.Slider(0.5, 1, value=0.9, step=0.01, label="Cosine ≥", elem_id="rh-dup-threshold")
        find = gr.Button("Find duplicate prompts", elem_id="rh-dup-find")
    summary = gr.Markdown(elem_id="rh-dup-summary")
    table = gr.Dataframe(headers=DUPLICATE_COLUMNS, interactive=False, wrap=True, elem_id="rh-dup-table")
    return {"dup_threshold": threshold, "dup_find": find, "dup_summary": summary, "dup_table": table}


def _budget_curve_tab() -> dict[str, Any]:
    gr.Markdown(
        "How much annotation a selection saves, as measured by `real-hub budget-curve` on the "
        "labelled pairs: the files it wrote into the loaded folder, or into the folder named here."
    )
    with gr.Row():
        folder = gr.Textbox(
            label="Folder with budget_curve.md and .png (empty: the loaded source)",
            elem_id="rh-curve-dir",
            scale=4,
        )
        show = gr.Button("Show", scale=1, elem_id="rh-curve-show")
    image = gr.Image(label="Accuracy against budget", type="pil", elem_id="rh-curve-plot")
    return {
        "curve_dir": folder,
        "curve_show": show,
        "curve_img": image,
        "curve_md": gr.Markdown(elem_id="rh-curve-table"),
    }


def _card_tab() -> dict[str, Any]:
    gr.Markdown("### Provenance")
    provenance = gr.Markdown(elem_id="rh-provenance")
    gr.Markdown("### Statistics")
    return {"provenance": provenance, "statistics": gr.Markdown(elem_id="rh-statistics")}


def _annotate_tab() -> dict[str, Any]:
    gr.Markdown(
        "Annotate the pairs of the config chosen in *Browse*: which response is better? "
        "A and B are in a random order; answers are appended, never overwritten."
    )
    c: dict[str, Any] = {}
    with gr.Row():
        c["annotator"] = gr.Textbox(label="Annotator name", elem_id="rh-annotator")
        c["start"] = gr.Button("Start / resume", elem_id="rh-start")
    c["progress"] = gr.Markdown(elem_id="rh-progress")
    c["ann_key"] = gr.Textbox(visible=False, elem_id="rh-ann-key")
    c["ann_prompt"] = gr.HTML(elem_id="rh-ann-prompt")
    with gr.Row():
        c["ann_a"] = gr.HTML(label="A", elem_id="rh-ann-a")
        c["ann_b"] = gr.HTML(label="B", elem_id="rh-ann-b")
    with gr.Row():
        c["answers"] = {
            "A": gr.Button("A is better", elem_id="rh-label-a"),
            "B": gr.Button("B is better", elem_id="rh-label-b"),
            "tie": gr.Button("Tie", elem_id="rh-label-tie"),
            "skip": gr.Button("Skip", elem_id="rh-label-skip"),
        }
    c["agreement"] = gr.Markdown(elem_id="rh-agreement")
    return c


# ------------------------------------------------------------------------------------------------ events
#: The inputs of the browsing events, in :class:`~real_hub.space.handlers.FilterInputs`' order.
FILTERS = ("source", *(f.name for f in fields(FilterInputs) if f.name != "source"))


def _wire_browsing(app: Any, h: SpaceHandlers, c: dict[str, Any]) -> None:
    filters = [c[name] for name in FILTERS]
    table_out = [c["grid"], c["page"], c["summary"]]
    pair_out = [c[name] for name in ("position", "pair_header", "prompt", "chosen", "rejected", "heat")]
    load_out = [c[name] for name in ("status", "config", "split", "domain", "provenance", "statistics")]
    source = c["source"]

    def refresh(event: Any, suffix: str) -> None:
        event.then(h.first_page, filters, table_out, api_name=f"table_{suffix}").then(
            h.first_pair, filters, pair_out, api_name=f"pair_{suffix}"
        )

    for trigger, suffix in ((app.load, "start"), (c["load"].click, "load"), (source.submit, "submit")):
        ev = trigger(h.load, source, load_out, api_name=f"load_{suffix}" if suffix != "load" else "load")
        refresh(ev, suffix)
        plots = [c["hist"], c["scatter"], c["scatter_note"]]
        ev.then(h.plots, source, plots, api_name=f"plots_{suffix}")
        curve_in, curve_out = [source, c["curve_dir"]], [c["curve_md"], c["curve_img"]]
        ev.then(h.budget_curve, curve_in, curve_out, api_name=f"budget_curve_{suffix}")
    chosen = c["config"].input(
        h.choose_config, [source, c["config"]], [c["split"], c["domain"]], api_name="choose_config"
    )
    refresh(chosen, "config")
    changes = [c["split"].input, c["domain"].input, c["search"].submit]
    changes += [c["similarity_min"].release, c["similarity_max"].release]
    changes += [c["margin_min"].submit, c["margin_max"].submit]
    gr.on(changes, h.first_page, filters, table_out, api_name="filter").then(
        h.first_pair, filters, pair_out, api_name="pair_filter"
    )
    paged, placed = [*filters, c["page"]], [*filters, c["position"]]
    c["next_page"].click(h.next_page, paged, table_out, api_name="next_page")
    c["previous_page"].click(h.previous_page, paged, table_out, api_name="previous_page")
    c["page"].submit(h.table, paged, table_out, api_name="goto_page")
    c["grid"].select(h.select_row, c["grid"], c["position"], api_name="select_row").then(
        h.pair, placed, pair_out, api_name="pair_select"
    )
    c["position"].submit(h.pair, placed, pair_out, api_name="pair")
    c["next_pair"].click(h.next_pair, placed, pair_out, api_name="next_pair")
    c["previous_pair"].click(h.previous_pair, placed, pair_out, api_name="previous_pair")
    dup_in = [source, c["config"], c["split"], c["dup_threshold"]]
    c["dup_find"].click(h.duplicates, dup_in, [c["dup_table"], c["dup_summary"]], api_name="duplicates")
    curve_in, curve_out = [source, c["curve_dir"]], [c["curve_md"], c["curve_img"]]
    gr.on(
        [c["curve_show"].click, c["curve_dir"].submit],
        h.budget_curve,
        curve_in,
        curve_out,
        api_name="budget_curve",
    )


def _wire_annotation(h: SpaceHandlers, c: dict[str, Any]) -> None:
    ann_in = [c["source"], c["config"], c["split"], c["annotator"]]
    ann_out = [c[name] for name in ("ann_key", "ann_prompt", "ann_a", "ann_b", "progress", "agreement")]
    c["start"].click(h.annotation, ann_in, ann_out, api_name="annotation")
    c["annotator"].submit(h.annotation, ann_in, ann_out, api_name="annotation_submit")
    for choice, button in c["answers"].items():
        button.click(
            lambda *a, _c=choice: h.answer(_c, *a),
            [*ann_in, c["ann_key"]],
            ann_out,
            api_name=f"label_{choice.lower()}",
        )
