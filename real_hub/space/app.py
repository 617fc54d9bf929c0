"""The Gradio app of the Space (``spaces/app.py``) and of ``real-hub space``: its layout and event wiring.

What each event computes lives in :mod:`~real_hub.space.handlers`; every event has its own ``api_name``,
so the page and ``gradio_client`` call the same endpoints. Loaded sets live in a per-app
:class:`~real_hub.space.browse.SourceCache`; only the visible page of the table goes to the browser.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from .annotation import ANNOTATIONS_DIR_ENV, AnnotationStore, annotation_scheduler
from .browse import DEMO, SourceCache
from .handlers import TABLE_COLUMNS, SpaceHandlers
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
    """
    folder = Path(annotations_dir or os.environ.get(ANNOTATIONS_DIR_ENV) or "labels")
    folder.mkdir(parents=True, exist_ok=True)
    if scheduler == "env":
        scheduler = annotation_scheduler(folder)
    store = AnnotationStore(folder, scheduler=scheduler)
    h = SpaceHandlers(SourceCache(encoder=encoder), AnnotationQueues(store, seed), page_size)
    initial = (source or "").strip() or DEMO

    with gr.Blocks(title="real-hub: curated preference pairs") as app:
        gr.Markdown(
            "# real-hub: curated preference pairs\n"
            "Browse pairs selected by REAL (least similar responses) and rewarded by Dr.SoW, "
            "plot them, and annotate them."
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
                    headers=TABLE_COLUMNS,
                    interactive=False,
                    wrap=True,
                    column_widths=COLUMN_WIDTHS,
                    label="Pairs",
                    elem_id="rh-table",
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
                    colors = {ONLY_HERE: "#f6c85f"}
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
            with gr.Tab("Budget curve"):
                gr.Markdown(
                    "How much annotation a selection saves, as measured by `real-hub budget-curve` on the "
                    "labelled pairs: the files it wrote into the loaded folder, or into the folder named "
                    "here."
                )
                with gr.Row():
                    curve_dir = gr.Textbox(
                        label="Folder with budget_curve.md and .png (empty: the loaded source)",
                        elem_id="rh-curve-dir",
                        scale=4,
                    )
                    curve_btn = gr.Button("Show", scale=1, elem_id="rh-curve-show")
                curve_img = gr.Image(label="Accuracy against budget", type="pil", elem_id="rh-curve-plot")
                curve_md = gr.Markdown(elem_id="rh-curve-table")
            with gr.Tab("Card"):
                gr.Markdown("### Provenance")
                prov_md = gr.Markdown(elem_id="rh-provenance")
                gr.Markdown("### Statistics")
                stats_md = gr.Markdown(elem_id="rh-statistics")
            with gr.Tab("Annotate"):
                gr.Markdown(
                    "Annotate the pairs of the config chosen in *Browse*: which response is better? "
                    "A and B are in a random order; answers are appended, never overwritten."
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

        def refresh(event: Any, suffix: str) -> None:
            event.then(h.first_page, filters, table_out, api_name=f"table_{suffix}").then(
                h.first_pair, filters, pair_out, api_name=f"pair_{suffix}"
            )

        for trigger, suffix in ((app.load, "start"), (load_btn.click, "load"), (src_box.submit, "submit")):
            ev = trigger(h.load, src_box, load_out, api_name=f"load_{suffix}" if suffix != "load" else "load")
            refresh(ev, suffix)
            ev.then(h.plots, src_box, [hist, scatter, scatter_note], api_name=f"plots_{suffix}")
            ev.then(
                h.budget_curve, [src_box, curve_dir], [curve_md, curve_img], api_name=f"budget_curve_{suffix}"
            )
        refresh(
            config.input(h.choose_config, [src_box, config], [split, domain], api_name="choose_config"),
            "config",
        )
        gr.on(
            [split.input, domain.input, search.submit, smin.release, smax.release, mmin.submit, mmax.submit],
            h.first_page,
            filters,
            table_out,
            api_name="filter",
        ).then(h.first_pair, filters, pair_out, api_name="pair_filter")
        next_page_btn.click(h.next_page, [*filters, page], table_out, api_name="next_page")
        prev_page_btn.click(h.previous_page, [*filters, page], table_out, api_name="previous_page")
        page.submit(h.table, [*filters, page], table_out, api_name="goto_page")
        grid.select(h.select_row, grid, position, api_name="select_row").then(
            h.pair, [*filters, position], pair_out, api_name="pair_select"
        )
        position.submit(h.pair, [*filters, position], pair_out, api_name="pair")
        next_btn.click(h.next_pair, [*filters, position], pair_out, api_name="next_pair")
        prev_btn.click(h.previous_pair, [*filters, position], pair_out, api_name="previous_pair")

        gr.on(
            [curve_btn.click, curve_dir.submit],
            h.budget_curve,
            [src_box, curve_dir],
            [curve_md, curve_img],
            api_name="budget_curve",
        )
        ann_in = [src_box, config, split, annotator]
        ann_out = [ann_key, ann_prompt, ann_a, ann_b, progress, agreement]
        start_btn.click(h.annotation, ann_in, ann_out, api_name="annotation")
        annotator.submit(h.annotation, ann_in, ann_out, api_name="annotation_submit")
        for choice, button in buttons.items():
            button.click(
                lambda *a, _c=choice: h.answer(_c, *a),
                [*ann_in, ann_key],
                ann_out,
                api_name=f"label_{choice.lower()}",
            )
    app.real_hub_cache = h.cache  # for tests and callers that want the loaded sets
    app.real_hub_store = store
    return app


def launch(source: str | None = None, **kwargs: Any) -> Any:
    """Build the app and launch it.

    ``annotations_dir`` and ``encoder`` go to :func:`build_app`, the other keywords to ``Blocks.launch``.
    """
    app = build_app(source, **{k: kwargs.pop(k) for k in ("annotations_dir", "encoder") if k in kwargs})
    app.launch(css=CSS, **kwargs)
    return app
