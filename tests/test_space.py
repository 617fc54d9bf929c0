"""The Space's endpoints, called with gradio_client against the app on loopback: demo and 100,000 pairs."""

from __future__ import annotations

import logging
import re
import statistics
import time

import pytest
from datasets import Dataset
from space_helpers import HashEncoder, launched, save_synthetic

from real_hub import EmbedResponses, load_demo, save_curated, select_pairs
from real_hub.real.select import STRATEGIES

gradio_client = pytest.importorskip("gradio_client")

logger = logging.getLogger(__name__)
BIG = 100_000
NO_FILTER = (-1, 1, None, None, "", "")


@pytest.fixture(scope="module")
def demo_pairs() -> dict[str, Dataset]:
    """The demo's pairs per strategy, selected here independently of the app."""
    cands = load_demo()
    embed = EmbedResponses(HashEncoder())
    embedded = cands.map(embed, batched=True, features=embed.output_features(cands.features))
    return {s: select_pairs(embedded, s, seed=0)[0] for s in STRATEGIES}


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    data = save_synthetic(folder, BIG)
    return folder, data


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    save_curated(Dataset.from_dict({"prompt": ["p"], "answer": ["a"], "rejected": ["r"]}), folder, "default")
    return folder


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from real_hub.space.app import build_app

    app = build_app(
        None, annotations_dir=tmp_path_factory.mktemp("labels"), encoder=HashEncoder(), scheduler=None
    )
    with launched(app) as url:
        yield gradio_client.Client(url, verbose=False)


def shown(prompt) -> str:
    """A prompt as the table previews it: the last turn of a conversation, on one line, 120 characters."""
    text = " ".join((prompt[-1]["content"] if isinstance(prompt, list) else prompt).split())
    return text if len(text) <= 120 else text[:119] + "…"


def call(client, api, *args):
    return client.predict(*args, api_name=f"/{api}")


def test_load_lists_configs_splits_and_the_card(client, demo_pairs):
    status, config, split, domain, prov, stats = call(client, "load", "")
    assert [c[0] for c in config["choices"]] == list(STRATEGIES)
    assert config["value"] == "dissimilar"
    assert [s[0] for s in split["choices"]] == ["train"]
    demo = load_demo()
    assert [d[0] for d in domain["choices"]] == ["", *sorted(set(demo["domain"]))]
    for s, pairs in demo_pairs.items():
        assert f"{s}: {len(pairs)}" in status
        assert f"| {s} | rows_out.train | {len(pairs)} |" in stats
        assert f"| {s} | strategy | {s} |" in prov
    assert f"| dissimilar | rows_in | {len(demo)} |" in stats


def test_first_page_is_the_first_rows_of_the_config(client, demo_pairs):
    frame, page, summary = call(client, "goto_page", "demo", "similar", "train", *NO_FILTER, 0)
    pairs = demo_pairs["similar"]
    assert page == 0
    assert summary == f"{len(pairs)} pair(s) match; page 1 of {-(-len(pairs) // 20)}"
    rows = frame["data"]
    assert [r[0] for r in rows] == list(range(20))
    assert [r[2] for r in rows] == [round(s, 4) for s in pairs["similarity"][:20]]
    assert [r[5] for r in rows] == [shown(p) for p in pairs["prompt"][:20]]
    margins = [c - r for c, r in zip(pairs["chosen_score"][:20], pairs["rejected_score"][:20])]
    assert [r[3] for r in rows] == pytest.approx(margins)


def test_filters_narrow_the_table_exactly(client, demo_pairs):
    pairs = demo_pairs["dissimilar"]
    lo, hi = -0.3, 0.2
    frame, _, summary = call(
        client, "goto_page", "demo", "dissimilar", "train", lo, hi, None, None, "safety", "", 0
    )
    expect = [
        i
        for i, (s, d) in enumerate(zip(pairs["similarity"], pairs["domain"]))
        if lo <= s <= hi and d == "safety"
    ]
    assert expect, "the filter should keep some pairs"
    assert [r[1] for r in frame["data"]] == expect[:20]
    assert summary.startswith(f"{len(expect)} pair(s) match")
    word = "sleep"
    frame, _, _ = call(client, "goto_page", "demo", "dissimilar", "train", *NO_FILTER[:5], word, 0)
    hits = [
        i
        for i, r in enumerate(pairs)
        if any(word in str(r[c]).lower() for c in ("prompt", "chosen", "rejected"))
    ]
    assert hits and [r[1] for r in frame["data"]] == hits[:20]


def test_pages_move_and_clamp(client, demo_pairs):
    n = len(demo_pairs["dissimilar"])
    last = (n - 1) // 20
    frame, page, _ = call(client, "next_page", "demo", "dissimilar", "train", *NO_FILTER, 0)
    assert page == 1 and frame["data"][0][0] == 20
    frame, page, _ = call(client, "next_page", "demo", "dissimilar", "train", *NO_FILTER, last)
    assert page == last and frame["data"][-1][0] == n - 1
    _, page, _ = call(client, "previous_page", "demo", "dissimilar", "train", *NO_FILTER, 0)
    assert page == 0


def test_pair_view_shows_the_pair_with_its_diff_and_heatmap(client, demo_pairs):
    pairs = demo_pairs["dissimilar"]
    position, header, prompt, chosen, rejected, heat = call(
        client, "pair", "demo", "dissimilar", "train", *NO_FILTER, 3
    )
    row = pairs[3]
    assert position == 3
    assert f"similarity: `{row['similarity']:.4g}`" in header and f"domain: `{row['domain']}`" in header
    assert "Pair 4 of" in header
    import html

    assert html.escape(row["prompt"]) in prompt
    assert "".join(t["token"] for t in chosen) == row["chosen"]
    assert "".join(t["token"] for t in rejected) == row["rejected"]
    marked = {w for t in chosen if t["class_or_confidence"] for w in t["token"].split()}
    assert marked and not marked & set(row["rejected"].split()) - set(row["chosen"].split())
    n = len(load_demo().filter(lambda r: r["id"] == row["id"])[0]["responses"])
    assert heat.count("<tr>") == n + 1
    assert heat.count('class="rh-selected"') == 2
    assert f"#{row['chosen_index']} (chosen)" in heat and f"#{row['rejected_index']} (rejected)" in heat


def test_next_and_previous_pair_move_within_the_filtered_list(client, demo_pairs):
    args = ("demo", "random", "train", *NO_FILTER)
    n = len(demo_pairs["random"])
    assert call(client, "next_pair", *args, 0)[0] == 1
    assert call(client, "previous_pair", *args, 5)[0] == 4
    assert call(client, "previous_pair", *args, 0)[0] == 0
    last = call(client, "next_pair", *args, n - 1)
    assert last[0] == n - 1 and f"Pair {n} of {n}" in last[1]


def test_plots_count_every_pair_per_strategy(client, demo_pairs):
    hist, points, note = call(client, "plots_load", "demo")
    counts: dict[str, int] = {}
    for row in hist["data"]:
        rec = dict(zip(hist["columns"], row))
        counts[rec["strategy"]] = counts.get(rec["strategy"], 0) + rec["pairs"]
    assert counts == {s: len(p) for s, p in demo_pairs.items()}
    assert len(points["data"]) == sum(len(p) for p in demo_pairs.values())
    assert note == ""


def test_unknown_repo_and_missing_column_show_an_error_in_the_page(client, bad_folder, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # no network here: fail fast, not after retries
    status, config, *_ = call(client, "load", "nobody/no-such-dataset-here")
    assert 'class="rh-error"' in status and "nobody/no-such-dataset-here" in status
    assert config["choices"] == []
    status, *_ = call(client, "load", str(bad_folder))
    assert 'class="rh-error"' in status and "chosen" in status


def test_a_page_of_100k_pairs_comes_as_fast_as_a_page_of_the_demo(client, big_folder):
    folder, data = big_folder
    status, *_ = call(client, "load", str(folder))
    assert f"dissimilar: {BIG}" in status

    def timed(*args):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            out = call(client, "goto_page", *args)
            times.append(time.perf_counter() - start)
        return statistics.median(times), out

    demo_t, _ = timed("demo", "dissimilar", "train", *NO_FILTER, 1)
    big_t, (frame, page, summary) = timed(
        str(folder), "dissimilar", "train", 0.5, 0.9, 1.0, None, "chat", "zebra", 2
    )
    start = time.perf_counter()
    call(client, "goto_page", str(folder), "dissimilar", "train", -0.5, 0.9, None, None, "", "", 300)
    fresh = time.perf_counter() - start
    logger.warning("page: demo %.4f s, 100k %.4f s (fresh filter %.4f s)", demo_t, big_t, fresh)
    assert big_t / demo_t < 20 and fresh / demo_t < 20
    sim, margin, dom, prompt = data["similarity"], data["margin"], data["domain"], data["prompt"]
    expect = [
        i
        for i in range(BIG)
        if 0.5 <= sim[i] <= 0.9 and margin[i] >= 1.0 and dom[i] == "chat" and "zebra" in prompt[i]
    ]
    assert summary.startswith(f"{len(expect)} pair(s) match")
    assert [r[1] for r in frame["data"]] == expect[40:60]
    out = call(client, "pair", str(folder), "dissimilar", "train", 0.5, 0.9, 1.0, None, "chat", "zebra", 7)
    assert f"(row {expect[7]})" in out[1]
    assert "No candidate embeddings" in out[5]


def test_cli_registers_the_space_command():
    from real_hub.cli import space
    from real_hub.cli.main import build_parser

    args = build_parser().parse_args(["space", "demo-output", "--port", "7861", "--labels-dir", "lab"])
    assert args.func is space.run
    assert (args.source, args.port, args.labels_dir, args.host) == ("demo-output", 7861, "lab", "127.0.0.1")
    assert build_parser().parse_args(["space"]).source is None


def test_a_saved_set_opens_on_dissimilar_with_previews_and_its_heatmap(client, demo_pairs, tmp_path):
    from real_hub.space.render import preview

    for strategy in sorted(demo_pairs):  # the card lists configs alphabetically: centroid first
        save_curated(demo_pairs[strategy], tmp_path, strategy)
    status, config, *_ = call(client, "load", str(tmp_path))
    assert config["value"] == "dissimilar" and [c[0] for c in config["choices"]] == list(STRATEGIES)
    pairs = demo_pairs["dissimilar"]
    frame, *_ = call(client, "goto_page", str(tmp_path), "dissimilar", "train", *NO_FILTER, 0)
    assert [(r[6], r[7]) for r in frame["data"]] == [
        (preview(r["chosen"]), preview(r["rejected"])) for r in pairs
    ][:20]
    *_, heat = call(client, "pair", str(tmp_path), "dissimilar", "train", *NO_FILTER, 3)
    row = pairs[3]
    assert heat.count("<tr>") == len(row["candidate_similarity"]) + 1
    selected = re.findall(r'<td class="rh-selected" style="[^"]*" title="([^"]+)"', heat)
    assert selected == [f"{row['similarity']:.3f}"] * 2  # the outlined cells are the pair's own cosine


def test_a_pushed_set_keeps_the_candidate_matrix_the_heatmap_reads(hub, demo_pairs):
    import uuid

    import numpy as np
    from conftest import HUB_USER
    from datasets import load_dataset

    from real_hub import push_curated
    from real_hub.space.browse import PairFilter, candidate_similarities, load_pair_source

    repo = f"{HUB_USER}/space-{uuid.uuid4().hex[:8]}"
    pairs = demo_pairs["dissimilar"]
    push_curated(pairs, repo, "dissimilar")
    loaded = load_dataset(repo, "dissimilar", split="train")
    assert loaded.features["candidate_similarity"] == pairs.features["candidate_similarity"]
    assert loaded["candidate_similarity"] == pairs["candidate_similarity"]
    item, _, _ = load_pair_source(repo).pair(PairFilter("dissimilar"), 5)
    sim = candidate_similarities(item)
    assert sim.shape == (len(pairs[5]["candidate_similarity"]),) * 2
    np.testing.assert_allclose(
        sim[item["chosen_index"], item["rejected_index"]], pairs[5]["similarity"], atol=1e-6
    )


def test_configs_list_the_strategies_first_and_open_on_dissimilar():
    from datasets import DatasetDict

    from real_hub.space.browse import PairSource

    dd = DatasetDict({"train": Dataset.from_dict({"prompt": ["p"], "chosen": ["c"], "rejected": ["r"]})})
    src = PairSource("x", {"zeta": dd, "random": dd, "alpha": dd, "dissimilar": dd, "centroid": dd})
    assert src.config_names() == ["dissimilar", "random", "centroid", "zeta", "alpha"]
    assert src.first_config() == "dissimilar"
    assert PairSource("y", {"zeta": dd, "alpha": dd}).first_config() == "zeta"  # as the card lists them


def test_the_budget_curve_tab_shows_the_table_and_plot_a_folder_holds(client, tmp_path):
    from real_hub import BudgetCurve

    curve = BudgetCurve(
        strategies=("dissimilar", "random"),
        budgets=(0.5, 1.0),
        splits=3,
        seed=0,
        scores={
            "dissimilar": [[0.6, 0.62, 0.61], [0.63, 0.64, 0.62]],
            "random": [[0.58, 0.6, 0.59], [0.63, 0.64, 0.62]],
        },
        reference=[0.63, 0.64, 0.62],
        train_pairs=[50, 50, 50],
        test_pairs=[50, 50, 50],
        pairs=100,
        prompts=100,
    )
    curve.save(tmp_path)
    table, image = call(client, "budget_curve", "", str(tmp_path))
    assert "| 50% | 25 | 61.0 [" in table and "dissimilar - random" in table
    assert "![budget curve]" not in table
    assert image and open(image, "rb").read(4) in (b"RIFF", b"\x89PNG")  # the plot, as gradio serves it
    note, none = call(client, "budget_curve", "", str(tmp_path / "empty"))
    assert "No budget curve in" in note and "real-hub budget-curve DATA --output-dir FOLDER" in note
    assert none is None
