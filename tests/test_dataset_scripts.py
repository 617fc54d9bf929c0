"""The dataset scripts run as users run them: a subprocess with HfArgumentParser flags, on local files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HUB_TOKEN, HUB_USER
from datasets import load_dataset
from huggingface_hub import DatasetCard
from tiny_models import gpt2_tokenizer, save_tiny, tiny_gpt2

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"


def run_script(name: str, *args: str, hub_url: str | None = None) -> str:
    """Run a dataset script; offline, or against the loopback Hub at ``hub_url``."""
    env = {"HF_HUB_OFFLINE": "1", **_env()}
    if hub_url is not None:
        del env["HF_HUB_OFFLINE"]
        env.update({"HF_ENDPOINT": hub_url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": HUB_TOKEN})
    proc = subprocess.run(
        [sys.executable, str(ROOT / "dataset_scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}


@pytest.mark.slow
def test_hh_script_keeps_the_budget(tmp_path):
    out = run_script(
        "hh_rlhf.py",
        "--data_files",
        str(HH),
        "--limit",
        "40",
        "--budget",
        "0.25",
        "--output_dir",
        str(tmp_path / "hh"),
    )
    assert "40 rows -> 40 pairs -> 10 kept" in out
    kept = load_dataset(str(tmp_path / "hh"), "dissimilar")["train"]
    assert kept.num_rows == 10 and isinstance(kept[0]["prompt"], list)
    from trl.data_utils import is_conversational

    assert all(is_conversational(row) for row in kept)  # TRL's conversational format, as DPOTrainer reads it
    assert all(len(row["chosen"]) == len(row["rejected"]) == 1 for row in kept)


def shp_rows(domain: str = "askscience_train") -> list[dict]:
    """Three posts of three comments each, every comment pair of a post as one row (SHP's schema)."""
    rows = []
    for post in range(3):
        comments = [
            (f"p{post}c{i}", f"Comment {i} on post {post}: " + "words " * (i + 1), 10 * i + post)
            for i in range(3)
        ]
        for a in range(3):
            for b in range(a + 1, 3):
                ca, cb = comments[a], comments[b]
                rows.append(
                    {
                        "post_id": f"p{post}",
                        "domain": domain,
                        "upvote_ratio": 0.9,
                        "history": f"Question {post}?",
                        "c_root_id_A": ca[0],
                        "c_root_id_B": cb[0],
                        "created_at_utc_A": 1,
                        "created_at_utc_B": 2,
                        "score_A": ca[2],
                        "score_B": cb[2],
                        "human_ref_A": ca[1],
                        "human_ref_B": cb[1],
                        "labels": int(ca[2] > cb[2]),
                        "seconds_difference": 1.0,
                        "score_ratio": 2.0,
                    }
                )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.slow
def test_shp_script_groups_posts(tmp_path):
    data = write_jsonl(tmp_path / "shp.jsonl", shp_rows())
    out = run_script("shp.py", "--data_files", str(data), "--output_dir", str(tmp_path / "shp"))
    assert "3 posts -> 3 pairs" in out
    pairs = load_dataset(str(tmp_path / "shp"), "dissimilar")["train"]
    assert sorted(pairs["prompt"]) == ["Question 0?", "Question 1?", "Question 2?"]
    assert all(isinstance(c, str) for c in [*pairs["chosen"], *pairs["rejected"]])  # TRL's standard format
    assert all(c > r for c, r in zip(pairs["chosen_score"], pairs["rejected_score"]))


ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")


def ultrafeedback_rows() -> list[dict]:
    """Six prompts with four rated completions each (UltraFeedback's schema)."""
    aspects = ASPECTS
    rows = []
    for p in range(6):
        completions = []
        for c in range(4):
            ratings = {
                a: {"Rating": str(1 + (c + k + p) % 5), "Rationale": "..."} for k, a in enumerate(aspects)
            }
            completions.append(
                {
                    "model": f"m{c}",
                    "response": f"Answer {c} to question {p}. " + "more " * c,
                    "annotations": ratings,
                    "overall_score": float(c),
                    "fine-grained_score": None,
                }
            )
        rows.append(
            {
                "source": "test",
                "instruction": f"Question {p}?",
                "models": [f"m{c}" for c in range(4)],
                "completions": completions,
            }
        )
    return rows


@pytest.mark.slow
def test_ultrafeedback_script_splits_and_orients_by_mean_rating(tmp_path):
    data = write_jsonl(tmp_path / "uf.jsonl", ultrafeedback_rows())
    out = run_script(
        "ultrafeedback.py",
        "--data_files",
        str(data),
        "--test_size",
        "0.34",
        "--output_dir",
        str(tmp_path / "uf"),
    )
    assert "6 prompts -> 6 pairs" in out
    splits = load_dataset(str(tmp_path / "uf"), "dissimilar")
    assert splits["train"].num_rows + splits["test"].num_rows == 6 and splits["test"].num_rows == 3
    for row in splits["train"]:
        p = int(row["prompt"].split()[1].rstrip("?"))

        def mean(c, p=p):
            return sum(1 + (c + k + p) % 5 for k in range(4)) / 4

        assert (
            row["chosen_score"]
            == mean(row["chosen_index"])
            > row["rejected_score"]
            == mean(row["rejected_index"])
        )


def test_ultrafeedback_prompts_script_generates_and_selects(tmp_path):
    """Prompt-only: UltraFeedback instructions, tiny generator and embedder, 4 samples, one pair each."""
    from tiny_models import gpt2_tokenizer, llama_tokenizer, save_tiny, tiny_gpt2, tiny_llama

    gtok, ltok = gpt2_tokenizer(), llama_tokenizer()
    generator = save_tiny(tiny_llama(ltok), ltok, tmp_path / "llama")
    embedder = save_tiny(tiny_gpt2(gtok), gtok, tmp_path / "gpt2")
    rows = [{"source": "test", "instruction": f"Question {p}?", "completions": []} for p in range(5)]
    data = tmp_path / "uf.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_script(
        "ultrafeedback_prompts.py",
        "--data_files", str(data), "--model", str(generator), "--n", "4", "--max_new_tokens", "8",
        "--temperature", "1.0", "--embedder", str(embedder), "--embed_backend", "causal-lm",
        "--test_size", "0.4", "--output_dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert "5 prompts -> 20 responses ->" in out
    splits = load_dataset(str(tmp_path / "out"), "dissimilar")
    assert splits["train"].num_rows + splits["test"].num_rows >= 1
    for row in splits["train"]:
        assert row["prompt"].startswith("Question") and row["chosen"] != row["rejected"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert str(generator) in card and "temperature=1.0" in card


# ------------------------------------------------------------------------- push to the loopback Hub

HH_FIXTURE = [
    {
        "chosen": f"\n\nHuman: Question {i}: how do I {verb}?\n\nAssistant: "
        + "Here is a careful answer. " * (1 + i % 3),
        "rejected": f"\n\nHuman: Question {i}: how do I {verb}?\n\nAssistant: " + "No. " * (1 + i % 2),
    }
    for i, verb in enumerate(
        ["bake bread", "fix a bike", "pick a lock", "learn French", "sleep well", "win"] * 2
    )
]


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory) -> str:
    """A tiny random GPT-2 folder, embedded with the causal-lm backend (no model download)."""
    tok = gpt2_tokenizer()
    return str(save_tiny(tiny_gpt2(tok), tok, tmp_path_factory.mktemp("embedder")))


SCRIPTS = {
    "hh": ("hh_rlhf.py", lambda: HH_FIXTURE, []),
    "shp": ("shp.py", shp_rows, ["--dataset_name", "stanfordnlp/SHP"]),
    "shp-2": ("shp.py", lambda: shp_rows("askphysics"), ["--dataset_name", "stanfordnlp/SHP-2"]),
    "ultrafeedback": ("ultrafeedback.py", ultrafeedback_rows, ["--test_size", "0.34"]),
}


@pytest.mark.parametrize("source", list(SCRIPTS))
def test_script_pushes_to_the_hub_with_a_card_naming_source_strategy_and_budget(
    source, hub, tmp_path, tiny_embedder
):
    script, rows, extra = SCRIPTS[source]
    data = write_jsonl(tmp_path / f"{source}.jsonl", rows())
    repo = f"{HUB_USER}/{source}-real"
    run_script(
        script,
        "--data_files",
        str(data),
        "--embedder",
        tiny_embedder,
        "--embed_backend",
        "causal-lm",
        "--strategy",
        "dissimilar",
        "--budget",
        "0.5",
        "--push_to_hub",
        "--repo_id",
        repo,
        *extra,
        hub_url=hub.url,
    )
    pushed = load_dataset(repo, "dissimilar")
    card = DatasetCard.load(repo, repo_type="dataset")
    provenance = card.data.to_dict()["real_hub"]["configs"]["dissimilar"]["provenance"]
    assert provenance["source"] == str(data)
    assert provenance["strategy"] == "dissimilar" and provenance["budget"] == 0.5
    assert str(data) in card.text and "dissimilar" in card.text and "0.5" in card.text
    rows_out = sum(split.num_rows for split in pushed.values())
    assert rows_out >= 1
    assert all(split.column_names[:3] == ["prompt", "chosen", "rejected"] for split in pushed.values())
