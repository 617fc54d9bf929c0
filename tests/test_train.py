"""train_dpo and `real-hub train`: DPO with TRL, engine reference log-probs, the model card and the push."""

from __future__ import annotations

import copy
import inspect
import json
import math

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM
from trl import DPOConfig, DPOTrainer

from real_hub import ColumnError, ConfigError, HubOptions, save_curated, train_dpo
from real_hub.cli.main import main
from real_hub.train.reference import REF_COLUMNS, dpo_trainer_class, scored_pair

QA = [
    ("What is the capital of France?", "The capital of France is Paris.", "I do not know."),
    ("How do I bake bread?", "Mix flour, water, salt and yeast, then let it rise.", "Bread is food."),
    ("Tell me a joke.", "Why did the chicken cross the road? To get to the other side.", "No."),
    ("Can you help me with my homework?", "Of course, what is the question?", "Do it yourself."),
    ("What time is it?", "It is half past seven in the evening.", "Time is a river."),
    ("Name some colours.", "My favourite colours are blue, green and yellow.", "Colours."),
    ("At what temperature does water boil?", "Water boils at one hundred degrees at sea level.", "Hot."),
    ("Count to five.", "one, two, three, four, five.", "five, four."),
    ("Say something kind.", "Please be kind and respectful to everyone you meet.", "Go away."),
    ("Where is the cat?", "The cat sat on the mat and looked at the bird.", "Cats are animals."),
    ("What does she do on weekends?", "She reads a book and writes short stories.", "Nothing at all."),
    ("Give me some advice.", "It is important to drink water and to sleep well.", "Sleep less."),
    ("Describe a quick animal.", "The quick brown fox jumps over the lazy dog.", "A slow dog."),
    ("Quote a proverb.", "A journey of a thousand miles begins with a single step.", "Steps."),
    ("What did they plant?", "They planted trees in the garden and watched them grow.", "Rocks."),
    ("Say thank you.", "Thank you very much for your help. You are welcome!", "Whatever."),
]
PAIRS = [
    {"prompt": f"Human: {q} Assistant:", "chosen": f" {c}", "rejected": f" {r}", "similarity": 0.1 * i}
    for i, (q, c, r) in enumerate(QA)
]
CONVERSATIONAL = [
    {"prompt": [{"role": "user", "content": q}], "chosen": c, "rejected": r, "similarity": 0.5}
    for q, c, r in QA
]
LOG2 = math.log(2.0)


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """A curated folder (config ``dissimilar``) of 16 standard pairs with a provenance column."""
    return str(save_curated(Dataset.from_list(PAIRS), tmp_path_factory.mktemp("curated"), "dissimilar"))


def _config(tmp_path, **kwargs) -> DPOConfig:
    base = {
        "output_dir": str(tmp_path / "trainer"),
        "precompute_ref_log_probs": True,
        "per_device_train_batch_size": 4,
        "bf16": False,
        "use_cpu": True,
        "report_to": "none",
        "disable_tqdm": True,
        "gradient_checkpointing": False,
    }
    return DPOConfig(**{**base, **kwargs})


def _trl_input(rows: list[dict]) -> Dataset:
    from real_hub.convert import to_trl

    return to_trl(Dataset.from_list(rows).remove_columns("similarity"))


# ---------------------------------------------------------------------------------- reference log-probs


@pytest.mark.parametrize(
    ("lm", "rows", "max_length", "mode"),
    [
        ("gpt2", PAIRS, 1024, "keep_start"),
        ("gpt2", PAIRS, 16, "keep_start"),
        ("llama", PAIRS, 1024, "keep_start"),
        ("llama", CONVERSATIONAL, 1024, "keep_start"),
        ("llama", CONVERSATIONAL, 40, "keep_start"),
        ("gpt2", PAIRS, 14, "keep_end"),
    ],
    ids=["gpt2", "gpt2-cut", "llama", "llama-chat", "llama-chat-cut", "gpt2-keep-end"],
)
def test_engine_reference_logps_equal_trls_own(tmp_path, request, lm, rows, max_length, mode):
    tiny = request.getfixturevalue(f"{lm}_lm")
    data = _trl_input(rows)
    args = _config(tmp_path, max_length=max_length, truncation_mode=mode)
    ours = dpo_trainer_class()(
        model=tiny.model,
        args=args,
        train_dataset=data,
        processing_class=tiny.tokenizer,
        ref_logps="engine",
    )
    other = copy.deepcopy(request.getfixturevalue(f"{lm}_lm_session"))
    theirs = DPOTrainer(model=other.model, args=args, train_dataset=data, processing_class=other.tokenizer)
    assert ours.train_dataset["prompt_ids"] == theirs.train_dataset["prompt_ids"]
    for column in REF_COLUMNS:
        engine, trl = np.array(ours.train_dataset[column]), np.array(theirs.train_dataset[column])
        assert engine.shape == (len(theirs.train_dataset),)
        assert np.all(trl < 0)
        np.testing.assert_allclose(engine, trl, rtol=0, atol=1e-4)
    lengths = [
        len(p) + len(c) for p, c in zip(ours.train_dataset["prompt_ids"], ours.train_dataset["chosen_ids"])
    ]
    if max_length < 100:  # the cut cases really cut
        assert max(lengths) > max_length


def test_scored_pair_follows_the_collator():
    # keep_start: the completion is cut from the right; position 0 is never scored
    assert scored_pair([1, 2, 3], [4, 5, 6], 5).response == (4, 5)
    assert scored_pair([1, 2, 3], [4, 5, 6], 5).context == (1, 2, 3)
    assert scored_pair([], [4, 5, 6], None).context == (4,)
    # keep_end: the prompt is cut from the left; without any prompt left the first token is context
    pair = scored_pair([1, 2, 3], [4, 5, 6], 4, "keep_end")
    assert (pair.context, pair.response, pair.truncated) == ((3,), (4, 5, 6), True)
    pair = scored_pair([1, 2, 3], [4, 5, 6], 2, "keep_end")
    assert (pair.context, pair.response) == ((5,), (6,))
    assert scored_pair([1], [2], 1) is None


def test_precompute_override_tracks_trl(tmp_path, gpt2_lm, gpt2_lm_session, monkeypatch):
    """Fails when TRL changes the path the override relies on (see real_hub/compat.py)."""
    # 1. the routed method still exists, with the signature the route expects
    params = list(inspect.signature(DPOTrainer._precompute_ref_logps).parameters)
    assert params == ["self", "dataset", "name", "batch_size"]
    cls = dpo_trainer_class()
    assert cls._precompute_ref_logps is cls.reference_logps

    ref_calls = []
    original = DPOTrainer.compute_ref_log_probs

    def counting(self, model, inputs):
        ref_calls.append(len(inputs["input_ids"]))
        return original(self, model, inputs)

    monkeypatch.setattr(DPOTrainer, "compute_ref_log_probs", counting)
    data = _trl_input(PAIRS)
    given = data.add_column(REF_COLUMNS[0], [-1.0 - i for i in range(len(data))])
    given = given.add_column(REF_COLUMNS[1], [-100.0 - i for i in range(len(data))])
    args = _config(tmp_path)

    # 2. with the override, columns handed over are used as they are and the reference model never runs
    ours = cls(
        model=gpt2_lm.model,
        args=args,
        train_dataset=given,
        processing_class=gpt2_lm.tokenizer,
        ref_logps="dataset",
    )
    assert ref_calls == []
    assert ours.train_dataset[REF_COLUMNS[0]] == given[REF_COLUMNS[0]]
    assert ours.train_dataset[REF_COLUMNS[1]] == given[REF_COLUMNS[1]]
    # ... and the engine mode never runs TRL's reference pass either
    engine = cls(
        model=copy.deepcopy(gpt2_lm_session.model),
        args=args,
        train_dataset=data,
        processing_class=copy.deepcopy(gpt2_lm_session.tokenizer),
    )
    assert ref_calls == [] and len(engine.train_dataset[REF_COLUMNS[0]]) == len(data)

    # 3. TRL alone recomputes although the columns exist (and then trips over the duplicates)
    with pytest.raises(ValueError, match="duplicated"):
        DPOTrainer(
            model=copy.deepcopy(gpt2_lm_session.model),
            args=args,
            train_dataset=given,
            processing_class=copy.deepcopy(gpt2_lm_session.tokenizer),
        )
    assert sum(ref_calls) == len(given) * 2  # every chosen and rejected sequence went through the model
    # 4. and in "trl" mode our class defers to that pass
    ref_calls.clear()
    cls(
        model=copy.deepcopy(gpt2_lm_session.model),
        args=args,
        train_dataset=given,
        processing_class=copy.deepcopy(gpt2_lm_session.tokenizer),
        ref_logps="trl",
    )
    assert sum(ref_calls) == len(given) * 2


# ------------------------------------------------------------------------------------------------- training


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_train_dpo_loss_falls_and_weights_change(tmp_path, curated, gpt2_lm_dir, gpt2_lm_session):
    out = tmp_path / "out"
    result = train_dpo(
        curated,
        str(gpt2_lm_dir),
        config="dissimilar",
        output_dir=out,
        learning_rate=1e-2,
        max_steps=8,
        per_device_train_batch_size=4,
    )
    # at step 0 the policy is the reference, so DPO's loss is exactly log 2 (engine ref == TRL's policy logps)
    assert result.first_loss == pytest.approx(LOG2, abs=1e-4)
    assert result.final_loss < 0.5 * LOG2
    assert len(result.losses) == 8
    assert (result.rows_in, result.rows_trained, result.ref_logps_source) == (16, 16, "engine")
    assert result.metrics["train_loss"] == pytest.approx(np.mean(result.losses), rel=1e-3)
    assert result.metrics["rewards/accuracies"] > 0.5
    before = _state(gpt2_lm_session.model)
    after = _state(AutoModelForCausalLM.from_pretrained(out))
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "transformer.h.0.attn.c_attn.weight" in changed


@pytest.mark.parametrize("precompute_ref", ["trl", "none"])
def test_other_reference_sources_start_at_log2(tmp_path, gpt2_lm, precompute_ref):
    pairs = Dataset.from_list(PAIRS)
    result = train_dpo(
        DatasetDict({"train": pairs, "test": pairs.select(range(8))}),
        (gpt2_lm.model, gpt2_lm.tokenizer),
        output_dir=tmp_path / "out",
        eval_split="test",
        learning_rate=1e-2,
        max_steps=2,
        per_device_train_batch_size=8,
        precompute_ref=precompute_ref,
    )
    assert result.ref_logps_source == precompute_ref
    assert result.first_loss == pytest.approx(LOG2, abs=1e-4)
    assert result.metrics["eval_loss"] < LOG2  # evaluated after training, on the pairs it trained on


def test_lora_trains_only_the_adapters(tmp_path, llama_lm, llama_lm_session):
    model = llama_lm.model
    result = train_dpo(
        Dataset.from_list(CONVERSATIONAL),
        (model, llama_lm.tokenizer),
        output_dir=tmp_path / "out",
        lora=True,
        lora_r=4,
        learning_rate=1e-2,
        max_steps=4,
        per_device_train_batch_size=16,  # the same batch at every step: its loss falls step after step
    )
    # LoRA's B starts at zero: the policy starts as the reference (adapters disabled), so the loss is log 2
    assert result.first_loss == pytest.approx(LOG2, abs=1e-4)
    assert result.losses == sorted(result.losses, reverse=True) and result.final_loss < result.first_loss
    params = dict(model.named_parameters())
    adapters = {k: v for k, v in params.items() if "lora_" in k}
    assert adapters and any(
        k.endswith("lora_B.default.weight") and v.abs().sum() > 0 for k, v in adapters.items()
    )
    original = _state(llama_lm_session.model)
    base = {k.replace(".base_layer", ""): v for k, v in params.items() if "lora_" not in k}
    assert base.keys() == original.keys()
    assert all(torch.equal(base[k].detach(), original[k]) for k in original)
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= files
    assert "model.safetensors" not in files
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.library_name == "peft" and "lora" in card.data.tags


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"precompute_ref": "sometimes"}, ConfigError, "precompute_ref must be one of auto, engine, trl"),
        ({"warmup_ratios": 0.1}, ConfigError, "unknown DPOConfig field.*warmup_ratios"),
        ({"push_to_hub": True}, ConfigError, "push_to_hub are set by train_dpo"),
        ({"precompute_ref": "dataset"}, ColumnError, "expected column.*'ref_chosen_logps'"),
        ({"eval_split": "test"}, ConfigError, "a Dataset has no splits: pass a DatasetDict"),
        ({"max_length": 5}, ConfigError, "no train pair is left: every prompt alone fills max_length=5"),
    ],
)
def test_train_dpo_rejects_bad_options(tmp_path, gpt2_lm, kwargs, error, match):
    with pytest.raises(error, match=match):
        train_dpo(
            Dataset.from_list(PAIRS),
            (gpt2_lm.model, gpt2_lm.tokenizer),
            output_dir=tmp_path,
            **kwargs,
        )


# ------------------------------------------------------------------------------------------------ CLI, card


def test_cli_trains_and_writes_the_card(tmp_path, curated, gpt2_lm_dir, capsys):
    out = tmp_path / "out"
    argv = ["train", curated, "--config", "dissimilar", "--model", str(gpt2_lm_dir), "--output-dir", str(out)]
    argv += ["--max_steps", "3", "--learning_rate", "0.001", "--beta", "0.2", "-q"]
    argv += ["--per_device_train_batch_size", "4"]
    argv += ["--base-model", "tester/tiny-gpt2", "--dataset-name", "tester/hh-real"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "reference log-probs: engine" in printed and f"wrote {out}" in printed
    assert "{'" not in printed  # the metrics are printed once, as the table: not also as TRL's log dicts
    assert printed.count("train_loss") == 1
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "tester/tiny-gpt2"
    assert card.data.datasets == ["tester/hh-real"]
    assert {"dpo", "trl", "real-hub"} <= set(card.data.tags)
    assert card.data.library_name == "transformers"
    assert "| learning_rate | 0.001 |" in card.text and "| beta | 0.2 |" in card.text
    assert "| max_steps | 3 |" in card.text and "| precompute_ref | engine |" in card.text
    assert "| train_loss |" in card.text and "| rewards/accuracies |" in card.text
    assert "config `dissimilar`, split `train`" in card.text
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()


def test_train_help_lists_dpo_config_flags_with_real_hub_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    flags = ("--learning_rate", "--num_train_epochs", "--per_device_train_batch_size", "--beta", "--model")
    for flag in flags:
        assert flag in text
    assert "--lr " not in text and "--epochs" not in text
    parser = __import__("real_hub.cli.train", fromlist=["build_parser"]).build_parser()
    args = parser.parse_args(["data", "--model", "m", "--learning-rate", "1e-6"])
    assert args.learning_rate == 1e-6 and args.max_length == 1024 and args.report_to == "none"
    assert args.bf16 is (torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def test_card_metadata_names_only_hub_ids(tmp_path, curated, gpt2_lm_dir):
    from real_hub.train.model_card import build_model_card

    card = build_model_card(base_model=str(gpt2_lm_dir), dataset=curated, training_args={}, metrics={})
    assert card.data.base_model is None and card.data.datasets is None
    assert f"`{gpt2_lm_dir}`" in card.text and f"`{curated}`" in card.text


def test_cli_error_is_one_line(tmp_path, gpt2_lm_dir, capsys):
    path = tmp_path / "candidates.jsonl"
    path.write_text(json.dumps({"prompt": "Hi", "responses": ["a", "b"]}) + "\n")
    code = main(["train", str(path), "--model", str(gpt2_lm_dir), "--output-dir", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: expected column(s) 'chosen', 'rejected'")
    assert "'prompt', 'responses'" in err and "\n" not in err


def test_an_unwritable_output_dir_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    from real_hub import atomic
    from real_hub.errors import OutputError

    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match=rf"^cannot write the output folder {out}: permission denied"):
        train_dpo(Dataset.from_list(PAIRS), str(tmp_path / "no-such-model"), output_dir=str(out))


# ------------------------------------------------------------------------------------------------------ Hub


def test_push_then_from_pretrained_gives_the_same_logits(tmp_path, hub, curated, gpt2_lm_dir, caplog):
    from conftest import HUB_TOKEN, HUB_USER
    from huggingface_hub import HfApi

    repo = f"{HUB_USER}/tiny-gpt2-dpo"
    out = tmp_path / "out"
    result = train_dpo(
        curated,
        str(gpt2_lm_dir),
        config="dissimilar",
        output_dir=out,
        learning_rate=1e-2,
        max_steps=2,
        hub=HubOptions(
            push_to=repo, private=True, base_model=f"{HUB_USER}/tiny-gpt2", dataset_name=f"{HUB_USER}/hh-real"
        ),
    )
    assert result.pushed_to == repo
    assert HfApi().model_info(repo).private is True
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    local = AutoModelForCausalLM.from_pretrained(out).eval()
    pushed = AutoModelForCausalLM.from_pretrained(repo).eval()
    base = AutoModelForCausalLM.from_pretrained(gpt2_lm_dir).eval()
    with torch.no_grad():
        expected, got, before = local(ids).logits, pushed(ids).logits, base(ids).logits
    assert torch.equal(got, expected)
    assert not torch.allclose(got, before)  # it is the trained model, not the base
    card = ModelCard.load(repo)
    assert card.data.base_model == f"{HUB_USER}/tiny-gpt2" and card.data.datasets == [f"{HUB_USER}/hh-real"]
    assert {"dpo", "trl", "real-hub"} <= set(card.data.tags)
    assert HUB_TOKEN not in card.text and HUB_TOKEN not in caplog.text
