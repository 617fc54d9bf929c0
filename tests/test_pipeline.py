"""curate() and `real-hub curate`: the whole pipeline, its card, and its errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard

from real_hub import ConfigError, FormatError, load_curated, to_pairs
from real_hub.cli.main import main
from real_hub.pipeline import curate
from real_hub.reporting import summarize

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"

CANDIDATES = [
    {
        "prompt": "How do I boil an egg?",
        "responses": [
            "Boil it for 9 minutes.",
            "Eggs are from hens.",
            "Put it in boiling water for nine minutes, then cool it.",
        ],
        "scores": [7.0, 1.0, 9.0],
    },
    {
        "prompt": "Name a prime number.",
        "responses": ["7", "Seven is prime.", "Four."],
        "scores": [8.0, 9.0, 1.0],
    },
    {"prompt": "Say hello.", "responses": ["Hello!", "Hello!"], "scores": [5.0, 5.0]},
]


@pytest.fixture
def candidates_file(tmp_path):
    path = tmp_path / "candidates.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in CANDIDATES) + "\n")
    return path


def test_candidates_pipeline_selects_saves_and_records(tmp_path, candidates_file, lm_dirs):
    out = tmp_path / "out"
    result = curate(
        str(candidates_file),
        output_dir=out,
        embedder=lm_dirs["gpt2"],
        embed_backend="causal-lm",
        strategy="dissimilar",
    )
    assert result.report.conversion.rows_out == 3
    assert result.report.selection.skipped == {"fewer_than_two_responses": 1}
    loaded = load_dataset(str(out), "dissimilar")["train"]
    assert loaded.num_rows == 2
    assert "responses_embedding" not in loaded.column_names
    assert all(c > r for c, r in zip(loaded["chosen_score"], loaded["rejected_score"]))
    curated = load_curated(out, "dissimilar")
    assert curated.statistics.skipped == {"fewer_than_two_responses": 1}
    assert curated.statistics.rows_out == {"train": 2}
    assert curated.provenance.embedder == lm_dirs["gpt2"] and curated.provenance.converter == "candidates"
    assert curated.provenance.license is None  # nothing beside the file says


def test_dr_sow_rewards_orient_the_pairs(tmp_path, candidates_file, lm_dirs):
    result = curate(
        str(candidates_file),
        output_dir=tmp_path / "o",
        embedder=lm_dirs["gpt2"],
        embed_backend="causal-lm",
        strong=lm_dirs["llama"],
        weak=lm_dirs["llama2"],
        domain_routing=False,
        label=True,
        strategy="similar",
    )
    pairs = result.dataset
    assert pairs.num_rows >= 1
    assert {"chosen_score", "rejected_score"} <= set(pairs.column_names)
    # with label=True the selection orients by Dr.SoW reward: the chosen response has the higher reward
    for row in pairs:
        assert row["chosen_score"] > row["rejected_score"]
    assert result.provenance.reward_models == {"strong": lm_dirs["llama"], "weak": lm_dirs["llama2"]}
    assert result.provenance.normalize == "sum"


def test_options_are_checked_before_any_work(candidates_file):
    with pytest.raises(ConfigError, match="strong and a weak"):
        curate(str(candidates_file), strong="x")
    with pytest.raises(ConfigError, match="budget"):
        curate(str(candidates_file), budget=1.5)
    with pytest.raises(ConfigError, match="unknown strategy"):
        curate(str(candidates_file), strategy="best")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("data.txt", b"hello", "cannot tell the format"),
        ("broken.jsonl.gz", b"not gzip at all", "could not load"),
        ("rows.jsonl", b'{"question": "q", "answer": "a"}\n', "columns"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    code = main(["curate", str(path), "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    lines = err.strip().replace("\r", "\n").splitlines()
    first = [line for line in lines if line.startswith("error")]
    # one error, whose first line says it all (the schema error lists the schemas tried on later lines)
    assert len(first) == 1 and first[0].startswith("error: ")
    if message == "columns":
        assert len(first[0]) < 210


def test_missing_file_unreachable_hub_and_no_output(tmp_path, capsys, monkeypatch):
    assert main(["curate", str(tmp_path / "nope.jsonl"), "--output-dir", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["curate", "someone/unknown-dataset", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "someone/unknown-dataset" in err and "Traceback" not in err
    assert main(["curate", str(tmp_path / "x.jsonl")]) == 2
    assert "nowhere to write" in capsys.readouterr().err


def test_format_errors_name_the_problem(tmp_path):
    from real_hub.hub.sources import load_source

    (tmp_path / "a.json").write_text("[]")
    (tmp_path / "b.parquet").write_bytes(b"")
    with pytest.raises(FormatError, match="all of one format"):
        load_source([str(tmp_path / "a.json"), str(tmp_path / "b.parquet")])


@pytest.mark.slow
def test_hh_budget_run_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "OUT"
    code = main(
        ["curate", str(HH), "--strategy", "dissimilar", "--budget", "0.35", "--output-dir", str(out), "-q"]
    )
    assert code == 0, capsys.readouterr().err
    raw = []
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        raw = [json.loads(line) for line in f]
    from datasets import Dataset

    _, conversion = to_pairs(Dataset.from_list(raw))
    n_pairs = conversion.rows_out
    data = load_dataset(str(out), "dissimilar")["train"]
    assert data.num_rows == round(0.35 * n_pairs)
    assert "similarity" in data.column_names
    card = DatasetCard.load(out / "README.md")
    stats = card.data.to_dict()["real_hub"]["configs"]["dissimilar"]["statistics"]
    assert stats["rows_in"] == len(raw)
    assert stats["converted"] == n_pairs
    assert stats["rows_out"] == {"train": data.num_rows}
    assert stats["skipped"] == conversion.skipped
    assert sum(stats["skipped"].values()) == len(raw) - n_pairs
    assert stats["annotation_saved"] == pytest.approx(1 - data.num_rows / n_pairs, abs=1e-6)
    assert stats["similarity"] == summarize(data["similarity"])
    assert card.data.license == "mit"  # from the LICENSE file beside the data
    assert np.max(data["similarity"]) <= 1.0


def test_curate_pushes_to_the_hub_and_loads_back(hub, tmp_path, candidates_file, lm_dirs, capsys):
    code = main(
        [
            "curate",
            str(candidates_file),
            "--push-to",
            "tester/curated",
            "--embedder",
            lm_dirs["gpt2"],
            "--embed-backend",
            "causal-lm",
            "--strategy",
            "similar",
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "pushed to tester/curated" in capsys.readouterr().out
    curated = load_curated("tester/curated", "similar")
    assert curated.dataset["train"].num_rows == 2
    assert curated.statistics.skipped == {"fewer_than_two_responses": 1}
    assert curated.provenance.strategy == "similar"


def test_curate_push_without_token_or_hub_is_one_line(
    hub, tmp_path, candidates_file, lm_dirs, capsys, monkeypatch
):
    import socket

    from huggingface_hub import constants

    args = [
        "curate",
        str(candidates_file),
        "--embedder",
        lm_dirs["gpt2"],
        "--embed-backend",
        "causal-lm",
        "-q",
    ]
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert main([*args, "--push-to", "tester/no-token"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "token" in err and "Traceback" not in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    assert main([*args, "--push-to", "tester/nowhere", "--token", "secret-token-123"]) == 2
    err = capsys.readouterr().err
    assert "could not reach the Hub" in err and "secret-token-123" not in err and "Traceback" not in err


def test_source_licence_comes_from_a_hub_card_or_a_licence_file(hub, tmp_path):
    from datasets import Dataset

    from real_hub import Provenance, push_curated
    from real_hub.hub.sources import source_license

    pairs = Dataset.from_dict({"prompt": ["p"], "chosen": ["a"], "rejected": ["b"]})
    push_curated(pairs, "tester/licensed", "dissimilar", provenance=Provenance(license="cc-by-4.0"))
    assert source_license("tester/licensed") == "cc-by-4.0"
    assert source_license("tester/no-such-repo") is None
    (tmp_path / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n")
    (tmp_path / "d.jsonl").write_text("{}")
    assert source_license(str(tmp_path / "d.jsonl")) == "apache-2.0"
