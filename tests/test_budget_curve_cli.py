"""``real-hub budget-curve``: the three files, the same numbers as the Python API, one-line errors."""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import load_dataset
from tiny_models import save_tiny_sentence_transformer

from real_hub import BudgetCurve, EmbedResponses, budget_curve, to_pairs
from real_hub.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
HH_FILE = Path(
    os.environ.get(
        "REAL_HUB_HH_FILE", ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    )
)
FILES = ["budget_curve.json", "budget_curve.md", "budget_curve.png"]


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory):
    return str(save_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st")))


@pytest.fixture
def embedded_pairs(tmp_path):
    """60 TRL pairs that already hold their embeddings, as JSON lines."""
    rng = np.random.default_rng(0)
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as f:
        for i in range(60):
            row = {
                "prompt": f"question {i // 2}",
                "chosen": f"good answer {i}",
                "rejected": f"bad answer {i}",
                "chosen_embedding": rng.normal(size=6).tolist(),
                "rejected_embedding": rng.normal(size=6).tolist(),
            }
            f.write(json.dumps(row) + "\n")
    return path


def test_pairs_with_embeddings_give_three_files_with_the_apis_numbers(embedded_pairs, tmp_path, capsys):
    out = tmp_path / "curve"
    argv = [
        "budget-curve",
        str(embedded_pairs),
        "--splits",
        "3",
        "--budgets",
        "0.5,1",
        "--output-dir",
        str(out),
    ]
    assert main([*argv, "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == FILES
    expected = budget_curve(
        load_dataset("json", data_files=str(embedded_pairs), split="train"), budgets=(0.5, 1.0), splits=3
    )
    assert BudgetCurve.load(out / "budget_curve.json") == expected
    printed = capsys.readouterr().out
    assert f"{100 * expected.accuracy('dissimilar', 0.5):.1f} [" in printed
    assert "annotation saved within 1 point of all pairs: dissimilar " in printed
    assert (out / "budget_curve.md").read_text() == "# Budget curve\n\n" + expected.to_markdown() + (
        "\n![budget curve](budget_curve.png)\n"
    )


@pytest.mark.skipif(not HH_FILE.exists(), reason="the shared HH-RLHF file is not on this machine")
def test_hh_transcripts_are_converted_embedded_and_measured(tiny_st, tmp_path):
    data = tmp_path / "hh.jsonl"
    with gzip.open(HH_FILE, "rt") as f:
        data.write_text("".join(next(f) for _ in range(80)))
    out = tmp_path / "curve"
    argv = ["budget-curve", str(data), "--embedder", tiny_st, "--splits", "2", "--output-dir", str(out), "-q"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == FILES
    pairs, _ = to_pairs(load_dataset("json", data_files=str(data), split="train"))
    pairs = pairs.map(EmbedResponses(tiny_st), batched=True, batch_size=256)
    assert BudgetCurve.load(out / "budget_curve.json") == budget_curve(pairs, splits=2)


def test_missing_embedding_columns_are_one_line_naming_them(embedded_pairs, tiny_st, tmp_path, capsys):
    argv = ["budget-curve", str(embedded_pairs), "--embedding-columns", "a_emb,b_emb", "--embedder", tiny_st]
    assert main([*argv, "--output-dir", str(tmp_path / "x"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "'a_emb', 'b_emb'" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--budgets", "0.5,2"], "--budgets: expected comma-separated fractions in (0, 1]"),
        (["--splits", "1"], "--splits: expected at least 2 splits"),
        (["--embedding-columns", "only_one"], "--embedding-columns: expected 2 comma-separated names"),
        (["--strategies", "centroid"], "unknown strategy 'centroid'"),
    ],
)
def test_bad_flags_are_one_line_errors(embedded_pairs, tmp_path, capsys, flags, message):
    assert main(["budget-curve", str(embedded_pairs), *flags, "--output-dir", str(tmp_path / "x"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_without_matplotlib_the_error_names_the_extra_before_any_work(
    embedded_pairs, tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["budget-curve", str(embedded_pairs), "--output-dir", str(tmp_path / "x"), "-q"]) == 2
    assert "pip install 'real-hub[experiments]'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_curate_cites_the_curve_in_the_card(embedded_pairs, tiny_st, tmp_path):
    from real_hub import load_curated

    curve_dir = tmp_path / "curve"
    argv = ["budget-curve", str(embedded_pairs), "--splits", "3", "--budgets", "0.25,0.5,1"]
    assert main([*argv, "--output-dir", str(curve_dir), "-q"]) == 0
    curve = BudgetCurve.load(curve_dir / "budget_curve.json")
    texts = tmp_path / "texts.jsonl"
    rows = [json.loads(line) for line in embedded_pairs.read_text().splitlines()]
    texts.write_text(
        "".join(json.dumps({k: r[k] for k in ("prompt", "chosen", "rejected")}) + "\n" for r in rows)
    )
    out = tmp_path / "curated"
    curate = ["curate", str(texts), "--budget", "0.5", "--embedder", tiny_st, "--output-dir", str(out)]
    assert main([*curate, "--budget-curve", str(curve_dir / "budget_curve.json"), "-q"]) == 0
    cited = load_curated(out, "dissimilar").statistics.budget_curve
    assert cited == curve.card_summary("dissimilar", 0.5)
    assert set(cited) == {"measurement", "all pairs", "dissimilar at 50%", "annotation saved within 1 point"}
    card = (out / "README.md").read_text()
    assert f"| budget_curve.dissimilar at 50% | {cited['dissimilar at 50%']} |" in card

    missing = ["--budget-curve", str(tmp_path / "nope.json"), "-q"]
    assert main([*curate[:-2], "--output-dir", str(tmp_path / "other"), *missing]) == 2
