"""curate(dedup=, decontaminate=[...]) and `real-hub curate --dedup --decontaminate`: steps, card, errors."""

from __future__ import annotations

import argparse
import json

import pytest
from datasets import Dataset
from dedup_helpers import BowEncoder, distinct_prompts, paraphrase, vary_case_and_space
from huggingface_hub import DatasetCard

from real_hub import ColumnError, ConfigError, load_curated
from real_hub.cli import curate as curate_cli
from real_hub.cli.main import main
from real_hub.pipeline import curate

TEST_PROMPTS = distinct_prompts(12)[9:]  # three held-out prompts
TRAIN_PROMPTS = distinct_prompts(8) + [
    vary_case_and_space(distinct_prompts(8)[1]),  # exact copy (case, whitespace)
    distinct_prompts(8)[4],  # verbatim copy
    paraphrase(distinct_prompts(8)[3]),  # near-duplicate
    TEST_PROMPTS[1].lower(),  # leaked from the test split
]


@pytest.fixture
def files(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(
            json.dumps({"prompt": p, "chosen": f"A careful answer {i}.", "rejected": f"No idea {i}."}) + "\n"
            for i, p in enumerate(TRAIN_PROMPTS)
        )
    )
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"question": q}) + "\n" for q in TEST_PROMPTS))
    return train, test


def test_curate_decontaminates_then_deduplicates_and_the_card_records_it(tmp_path, files, lm_dirs):
    train, test = files
    out = tmp_path / "out"
    result = curate(
        str(train),
        output_dir=out,
        embedder=lm_dirs["gpt2"],
        embed_backend="causal-lm",
        dedup=0.85,
        decontaminate=[f"{test}:question"],
        dedup_embedder=BowEncoder(),  # the Python API also takes an Encoder
    )
    report = result.report
    assert (report.decontamination.rows_in, report.decontamination.removed) == (12, 1)
    assert report.decontamination.matches[0].against_row == 1
    assert (report.dedup.rows_in, report.dedup.exact, report.dedup.semantic) == (11, 2, 1)
    assert report.rows_out == 8 == len(result.dataset)
    assert sorted(result.dataset["prompt"]) == sorted(distinct_prompts(8))
    curated = load_curated(out, "all")  # pairs without a budget: every pair kept
    assert curated.provenance.dedup == {
        "column": "prompt",
        "threshold": 0.85,
        "embedder": "BowEncoder",
        "keep": "first",
    }
    assert curated.provenance.decontamination["against"] == [f"{test}:question"]
    assert curated.statistics.dedup == {
        "rows_in": 11,
        "exact": 2,
        "semantic": 1,
        "rows_out": 8,
        "duplicate_groups": 3,
    }
    assert curated.statistics.decontamination == {
        "rows_in": 12,
        "exact": 1,
        "semantic": 0,
        "rows_out": 11,
        "against_prompts": 3,
        f"from {test}:question": 1,
    }
    text = DatasetCard.load(out / "README.md").text
    assert "| dedup | column=prompt, threshold=0.85, embedder=BowEncoder, keep=first |" in text
    assert "| dedup.semantic | 1 |" in text and "| decontamination.exact | 1 |" in text


def test_curate_command_with_dedup_and_decontaminate_flags(tmp_path, files, lm_dirs, capsys):
    train, test = files
    out = tmp_path / "out"
    code = main(
        [
            "curate",
            str(train),
            "--embedder", lm_dirs["gpt2"], "--embed-backend", "causal-lm",
            "--dedup-embedder", lm_dirs["gpt2"],
            "--decontaminate", f"{test}:question",
            "--decontaminate-threshold", "1",
            "--output-dir", str(out),
            "--dedup", "1",  # identical embeddings only: the exact copies are what goes
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "decontaminate (1)" in printed and "dedup (1)" in printed
    assert "deduplicate: 11 rows in, 2 exact copies and 0 near-duplicates removed" in printed
    curated = load_curated(out, "all")  # pairs without a budget: every pair kept
    assert curated.statistics.rows_out == {"train": 9}
    assert curated.provenance.dedup["embedder"] == f"{lm_dirs['gpt2']} (auto)"


def curate_parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="real-hub")
    curate_cli.register(root.add_subparsers())
    return root


@pytest.mark.parametrize(
    ("argv", "dedup", "against"),
    [
        ([], None, None),
        (["--dedup"], 0.9, None),
        (["--dedup", "0.8"], 0.8, None),
        (["--dedup=0.95", "--decontaminate", "a.jsonl", "--decontaminate", "org/bench:question"], 0.95,
         ["a.jsonl", "org/bench:question"]),
    ],
)  # fmt: skip
def test_flags_parse_into_the_options(argv, dedup, against):
    args = curate_parser().parse_args(["curate", "data.jsonl", *argv])
    assert (args.dedup, args.decontaminate) == (dedup, against)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dedup": 1.5}, r"^dedup must be a cosine similarity in \(0, 1\]"),
        ({"dedup": 0}, r"^dedup must be"),
        ({"decontaminate": ["x"], "decontaminate_threshold": 0}, r"^decontaminate_threshold must be"),
        ({"dedup_keep": "last"}, r"^dedup_keep only apply with dedup or decontaminate"),
        ({"dedup": 0.9, "dedup_keep": "middle"}, r"^dedup_keep must be one of"),
        ({"dedup": 0.9, "engine": "ray"}, "default engine only"),
    ],
)
def test_options_are_checked_before_any_work(files, options, message):
    with pytest.raises(ConfigError, match=message):
        curate(str(files[0]), **options)


def test_a_bad_threshold_is_one_line_naming_the_flag(files, capsys):
    assert main(["curate", str(files[0]), "--output-dir", "x", "--dedup", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --dedup must be") and err.count("\n") == 1


def test_prompt_only_sources_are_checked_before_generation(tmp_path, lm_dirs):
    prompts = Dataset.from_dict({"prompt": ["Name a colour.", "name a  COLOUR.", "Count to three."]})
    result = curate(
        prompts,
        output_dir=tmp_path / "gen",
        generate=lm_dirs["llama"],
        n=2,
        max_new_tokens=4,
        embedder=lm_dirs["gpt2"],
        embed_backend="causal-lm",
        dedup=0.99,
        dedup_embedder=BowEncoder(),
    )
    assert result.report.dedup.exact == 1
    assert result.report.generation.rows == 2  # the copy got no samples


def test_decontaminate_against_a_hub_dataset_with_its_column(hub, files):
    from datasets import DatasetDict

    from real_hub import decontaminate

    DatasetDict(
        {
            "eval": Dataset.from_dict({"instruction": TEST_PROMPTS[:2]}),
            "extra": Dataset.from_dict({"instruction": TEST_PROMPTS[2:]}),
        }
    ).push_to_hub("tester/bench")
    train = Dataset.from_json(str(files[0]))
    clean, report = decontaminate(train, "tester/bench:instruction", embedder=BowEncoder())
    assert report.against == ["tester/bench:instruction [eval]", "tester/bench:instruction [extra]"]
    assert [(m.row, m.against, m.against_row, m.exact) for m in report.matches] == [
        (11, "tester/bench:instruction [eval]", 1, True)
    ]
    assert len(clean) == len(train) - 1
    with pytest.raises(ColumnError, match=r"tester/bench:prompt \[eval\] has no column 'prompt'"):
        decontaminate(train, "tester/bench", embedder=BowEncoder())
