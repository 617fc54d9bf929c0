"""Prompt-only curation: curate(generate=...) and `real-hub curate --generate`; SmolLM2 end to end (slow)."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset, load_dataset

from real_hub import ConfigError, GenerateResponses, SelectPairs, load_curated
from real_hub.cli.main import main
from real_hub.models import SMOLLM2_135M_INSTRUCT, clear_model_cache
from real_hub.pipeline import curate

PROMPTS = [
    "How do I boil an egg?",
    "Name a prime number.",
    "Say hello.",
    "What is the capital of France?",
    "Tell me a joke.",
    "Give me one tip for sleeping well.",
]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    clear_model_cache()


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "id": i}) + "\n" for i, p in enumerate(PROMPTS)))
    return path


def test_prompt_only_curation_generates_selects_and_records(tmp_path, prompts_file, lm_dirs):
    out = tmp_path / "out"
    options = {"n": 4, "max_new_tokens": 8, "temperature": 1.0, "top_p": 1.0, "seed": 3}
    result = curate(
        str(prompts_file),
        output_dir=out,
        generate=lm_dirs["llama"],
        embedder=lm_dirs["gpt2"],
        embed_backend="causal-lm",
        **options,
    )
    gen = result.report.generation
    assert (gen.rows, gen.samples) == (6, 24)
    # the pairs are the generator's own samples: the same processor, run alone, gives them
    alone = Dataset.from_dict({"prompt": PROMPTS}).map(
        GenerateResponses(lm_dirs["llama"], max_new_tokens=8, n=4, temperature=1.0, top_p=1.0, seed=3),
        batched=True,
    )
    samples = dict(zip(alone["prompt"], alone["responses"], strict=True))
    pairs = load_dataset(str(out), "dissimilar")["train"]
    assert pairs.num_rows == result.report.rows_out >= 1
    for row in pairs:
        assert {row["chosen"], row["rejected"]} <= set(samples[row["prompt"]])
        assert row["chosen"] != row["rejected"]
        assert row["chosen_score"] is None  # no labels: left for annotation
    curated = load_curated(out, "dissimilar")
    assert curated.provenance.generator == {
        "model": lm_dirs["llama"], "n": 4, "max_new_tokens": 8, "temperature": 1.0, "top_p": 1.0,
        "generate_backend": "transformers", "seed": 3,
    }  # fmt: skip
    assert curated.statistics.generation["samples"] == 24
    assert curated.provenance.converter == "candidates"
    card = (out / "README.md").read_text()
    assert "generator" in card and lm_dirs["llama"] in card


def test_prompt_only_with_dr_sow_orients_the_pairs(tmp_path, prompts_file, lm_dirs):
    result = curate(
        str(prompts_file),
        output_dir=tmp_path / "o",
        generate=lm_dirs["llama"],
        n=3,
        max_new_tokens=6,
        embedder=lm_dirs["gpt2"],
        embed_backend="causal-lm",
        strong=lm_dirs["llama"],
        weak=lm_dirs["llama2"],
        domain_routing=False,
    )
    assert result.dataset.num_rows >= 1
    for row in result.dataset:
        assert row["chosen_score"] > row["rejected_score"]  # oriented by Dr.SoW reward


def test_prompts_without_generate_say_what_to_do(prompts_file):
    with pytest.raises(ConfigError, match="prompts but no responses: pass generate=MODEL"):
        curate(str(prompts_file))
    with pytest.raises(ConfigError, match="n, temperature only apply with generate=MODEL"):
        curate(str(prompts_file), n=3, temperature=0.5)
    with pytest.raises(ConfigError, match="n must be at least 2"):
        curate(str(prompts_file), generate="x", n=1)


def test_cli_generate_flags(tmp_path, prompts_file, lm_dirs, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "curate", str(prompts_file), "--generate", lm_dirs["llama"], "--n", "3", "--max-new-tokens", "6",
            "--temperature", "0.9", "--embedder", lm_dirs["gpt2"], "--embed-backend", "causal-lm",
            "--output-dir", str(out), "-q",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "generate (n=3)" in printed and "generated" in printed
    assert load_curated(out, "dissimilar").provenance.generator["temperature"] == 0.9


@pytest.mark.slow
def test_smollm2_generates_six_prompts_then_dissimilar_pairs_and_the_cli_card(tmp_path, prompts_file):
    """SmolLM2-135M-Instruct (offline GGUF): 6 prompts, n=4 -> 6 pairs of the model's own samples."""
    ds = Dataset.from_dict({"prompt": PROMPTS})
    gen = GenerateResponses(SMOLLM2_135M_INSTRUCT, n=4, max_new_tokens=24)
    generated = ds.map(gen, batched=True)
    assert all(len(r) == 4 for r in generated["responses"])
    one_by_one = ds.map(
        GenerateResponses(SMOLLM2_135M_INSTRUCT, n=4, max_new_tokens=24, batch_size=1), batched=True
    )
    assert one_by_one["responses"] == generated["responses"]  # per-row seeds: batching changes nothing
    assert all(len(set(r)) > 1 for r in generated["responses"])  # sampled, not all identical
    for responses in generated["responses"]:
        for r in responses:  # the new text only: no template turn, no system prompt, no end-of-turn token
            assert "<|im_end|>" not in r and "<|im_start|>" not in r, r
            assert not r.startswith(("system", "user", "assistant", "You are a helpful AI assistant")), r
    from real_hub import EmbedResponses

    embedded = generated.map(EmbedResponses(), batched=True)
    pairs = embedded.map(SelectPairs("dissimilar"), batched=True, remove_columns=embedded.column_names)
    assert pairs.num_rows == 6
    for row, responses in zip(pairs, generated["responses"], strict=True):
        assert row["chosen"] in responses and row["rejected"] in responses

    out = tmp_path / "smol"
    code = main(
        ["curate", str(prompts_file), "--generate", SMOLLM2_135M_INSTRUCT, "--n", "4",
         "--max-new-tokens", "24", "--output-dir", str(out), "-q"]
    )  # fmt: skip
    assert code == 0
    loaded = load_dataset(str(out), "dissimilar")["train"]
    assert loaded.num_rows == 6
    card = (out / "README.md").read_text()
    assert SMOLLM2_135M_INSTRUCT in card and "temperature=0.8" in card and "top_p=0.95" in card
    assert load_curated(out, "dissimilar").provenance.generator["n"] == 4
