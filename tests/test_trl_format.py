"""Curated sets are TRL preference sets: what real-hub writes, pushes and loads trains in TRL as it is.

The acceptance tests put nothing of real-hub between ``load_dataset`` and TRL's trainers: the set is made
by ``real-hub curate`` (or the demo), pushed to the Hub-API test server, loaded back with
``load_dataset(repo, config)`` and handed to ``trl.DPOTrainer`` / ``trl.RewardTrainer``. With the policy as
its own reference, DPO's first loss is exactly log 2; the reward model's score head starts at zero, so its
first loss is log 2 too unless a column (``margin``) changes the loss.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from pathlib import Path

import pytest
import torch
from conftest import HUB_USER
from datasets import Dataset, DatasetDict, load_dataset
from huggingface_hub import DatasetCard, HfApi, hf_hub_download
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer
from trl.data_utils import is_conversational

from real_hub import (
    Provenance,
    ReferenceSpec,
    add_reference_logps,
    curate,
    load_curated,
    run_demo,
    save_curated,
    to_trl,
    train_dpo,
)
from real_hub.cli.main import main
from real_hub.convert import trl_format
from real_hub.train.reference import REF_COLUMNS

HH = Path(
    os.environ.get(
        "REAL_HUB_HH_FILE",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz",
    )
)
LOG2 = math.log(2.0)
MESSAGES = [{"role": "user", "content": "How do I bake bread?"}]

TRL_CONVERSATIONAL = [
    {
        "prompt": [{"role": "user", "content": q}],
        "chosen": [{"role": "assistant", "content": c}],
        "rejected": [{"role": "assistant", "content": r}],
    }
    for q, c, r in [
        ("What is the capital of France?", "The capital of France is Paris.", "I do not know."),
        ("How do I bake bread?", "Mix flour, water, salt and yeast, then let it rise.", "Bread is food."),
        ("Tell me a joke.", "Why did the chicken cross the road? To get to the other side.", "No."),
        ("Can you help me with my homework?", "Of course, what is the question?", "Do it yourself."),
        ("What time is it?", "It is half past seven in the evening.", "Time is a river."),
        ("Name some colours.", "My favourite colours are blue, green and yellow.", "Colours."),
    ]
]


def _repo() -> str:
    return f"{HUB_USER}/trl-{uuid.uuid4().hex[:8]}"


def _losses(trainer) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def train_dpo_with_trl(pairs: Dataset, model_dir: str, out: Path) -> list[float]:
    """TRL's DPOTrainer, model given by path, two steps; nothing of real-hub involved."""
    args = DPOConfig(
        output_dir=str(out / "dpo"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        max_length=256,
        truncation_mode="keep_end",
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
    )
    trainer = DPOTrainer(model=model_dir, args=args, train_dataset=pairs)
    trainer.train()
    return _losses(trainer)


def train_reward_with_trl(pairs: Dataset, model_dir: str, out: Path) -> list[float]:
    """TRL's RewardTrainer on a tiny Llama whose score head starts at zero (first loss log 2), two steps."""
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    torch.nn.init.zeros_(model.score.weight)
    args = RewardConfig(
        output_dir=str(out / "rm"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        max_length=None,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
    )
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=pairs, processing_class=AutoTokenizer.from_pretrained(model_dir)
    )
    trainer.train()
    return _losses(trainer)


def assert_trains_in_trl(pairs: Dataset, model_dir: str, out: Path) -> None:
    for losses in (train_dpo_with_trl(pairs, model_dir, out), train_reward_with_trl(pairs, model_dir, out)):
        assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
        assert losses[0] == pytest.approx(LOG2, abs=1e-6)


def assert_one_format(pairs: Dataset, conversational: bool) -> None:
    rows = pairs.to_list()
    assert [is_conversational(r) for r in rows] == [conversational] * len(rows)
    for row in rows:  # never a mix: every side is a string, or every side a list of messages
        kinds = {isinstance(row[c], str) for c in ("prompt", "chosen", "rejected")}
        assert kinds == {not conversational}
        if conversational:
            assert [m["role"] for m in row["chosen"]] == ["assistant"]
            assert [m["role"] for m in row["rejected"]] == ["assistant"]


# ------------------------------------------------------------------------- acceptance: curate -> Hub -> TRL


def test_hh_set_from_the_cli_pushed_and_loaded_trains_in_trl(hub, tmp_path, llama_lm_dir, capsys):
    repo = _repo()
    code = main(
        [
            "curate", str(HH), "--limit", "12", "--budget", "0.5", "--push-to", repo,
            "--embedder", str(llama_lm_dir), "--embed-backend", "causal-lm", "-q",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    pairs = load_dataset(repo, "dissimilar", split="train")
    assert pairs.num_rows >= 4 and "similarity" in pairs.column_names
    assert_one_format(pairs, conversational=True)
    assert_trains_in_trl(pairs, str(llama_lm_dir), tmp_path)


@pytest.mark.parametrize("conversational", [True, False], ids=["conversational", "standard"])
def test_trl_source_pushed_and_loaded_trains_in_trl(hub, tmp_path, llama_lm_dir, capsys, conversational):
    rows = TRL_CONVERSATIONAL
    if not conversational:
        rows = [{k: v[0]["content"] for k, v in r.items()} for r in rows]  # the same pairs, plain strings
    source = tmp_path / "trl.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    repo = _repo()
    code = main(
        [
            "curate", str(source), "--format", "trl", "--push-to", repo,
            "--embedder", str(llama_lm_dir), "--embed-backend", "causal-lm", "-q",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    pairs = load_dataset(repo, "all", split="train")  # no --budget: every pair kept, none selected
    assert sorted(pairs["chosen"], key=str) == sorted((r["chosen"] for r in rows), key=str)
    assert_one_format(pairs, conversational=conversational)
    assert_trains_in_trl(pairs, str(llama_lm_dir), tmp_path)


def test_demo_set_pushed_and_loaded_trains_in_trl(hub, tmp_path, llama_lm_dir):
    out = tmp_path / "demo-output"
    run_demo(out, embedder=str(llama_lm_dir), strategies=("dissimilar",))
    repo = _repo()
    HfApi().create_repo(repo, repo_type="dataset")
    HfApi().upload_folder(repo_id=repo, folder_path=str(out), repo_type="dataset")
    pairs = load_dataset(repo, "dissimilar", split="train")
    # the demo mixes plain prompts with conversations: all are written as conversations (a plain prompt is
    # one user message), since TRL reads one format per set
    assert_one_format(pairs, conversational=True)
    assert [m["role"] for m in pairs[0]["prompt"]] == ["user"]
    assert_trains_in_trl(pairs, str(llama_lm_dir), tmp_path)


# ----------------------------------------------------------------------------- the schema as written and read


def _canonical_chat(n: int = 3) -> Dataset:
    return Dataset.from_list(
        [
            {"prompt": MESSAGES, "chosen": f"Knead it {i}.", "rejected": f"No {i}.", "similarity": i / 10}
            for i in range(n)
        ]
    )


def test_save_curated_writes_chat_pairs_conversational_and_load_curated_reads_them_back(tmp_path):
    pairs = _canonical_chat()
    save_curated(pairs, tmp_path, "dissimilar")
    loaded = load_dataset(str(tmp_path), "dissimilar", split="train")
    assert trl_format(loaded.features) == "conversational"
    assert loaded[1]["chosen"] == [{"role": "assistant", "content": "Knead it 1."}]
    assert loaded[1]["prompt"] == MESSAGES and loaded["similarity"] == pairs["similarity"]
    curated = load_curated(tmp_path, "dissimilar").dataset["train"]
    assert curated.to_list() == loaded.to_list() == to_trl(pairs).to_list()


def test_a_plain_split_beside_a_chat_split_is_written_conversational_too(tmp_path):
    plain = Dataset.from_dict({"prompt": ["Say hi."], "chosen": ["Hi!"], "rejected": ["No."]})
    chat = _canonical_chat(2).remove_columns("similarity")
    save_curated(DatasetDict({"train": chat, "test": plain}), tmp_path, "c")
    test = load_dataset(str(tmp_path), "c", split="test")
    assert test[0] == {
        "prompt": [{"role": "user", "content": "Say hi."}],
        "chosen": [{"role": "assistant", "content": "Hi!"}],
        "rejected": [{"role": "assistant", "content": "No."}],
    }
    assert_one_format(load_dataset(str(tmp_path), "c", split="train"), conversational=True)


def test_load_curated_converts_a_set_written_in_the_old_mixed_schema(tmp_path):
    from real_hub.hub.curated import write_config_files
    from real_hub.hub.dataset_card import Statistics, build_card

    old = _canonical_chat()  # what real-hub wrote before: message prompts, string responses
    paths = write_config_files(old, tmp_path, "dissimilar")
    build_card(str(tmp_path), "dissimilar", paths, Provenance(), Statistics()).save(tmp_path / "README.md")
    assert trl_format(load_dataset(str(tmp_path), "dissimilar", split="train").features) is None
    curated = load_curated(tmp_path, "dissimilar").dataset["train"]
    assert_one_format(curated, conversational=True)


def test_curate_returns_what_it_writes(tmp_path, llama_lm_dir):
    source = Dataset.from_list(
        [{"prompt": MESSAGES, "chosen": f"Knead it well {i}.", "rejected": f"No {i}."} for i in range(4)]
    )
    result = curate(source, output_dir=tmp_path, embedder=str(llama_lm_dir), embed_backend="causal-lm")
    assert trl_format(result.dataset.features) == "conversational"
    written = load_dataset(str(tmp_path), "all", split="train")  # pairs without a budget: none selected
    assert written.to_list() == result.dataset.to_list()


# --------------------------------------------------------------- extra columns: TRL drops them or uses them

EXTRA = {
    "chosen_embedding": [[0.1, 0.2]] * 4,
    "rejected_embedding": [[0.3, 0.4]] * 4,
    "similarity": [0.1, 0.2, 0.3, 0.4],
    "chosen_score": [2.0, 3.0, 4.0, 5.0],
    "rejected_score": [1.0, 1.0, 1.0, 1.0],
    "chosen_reward": [1.5, 2.5, 0.5, 1.0],
    "rejected_reward": [0.5, 0.5, 0.0, 0.0],
    "rewards": [[1.5, 0.5]] * 4,
    "domain": ["chat"] * 4,
    "source_id": ["a", "b", "c", "d"],
    "ref_chosen_logps": [-100.0] * 4,
    "ref_rejected_logps": [-1.0] * 4,
}


def _extra_set(tmp_path, conversational: bool, **more) -> Dataset:
    questions = [
        "What is the capital of France?",
        "How do I bake bread?",
        "Tell me a joke.",
        "Count to five.",
    ]
    prompts = [
        [{"role": "user", "content": q}] if conversational else f"Human: {q} Assistant:" for q in questions
    ]
    rows = {
        "prompt": prompts,
        "chosen": ["The capital is Paris.", "Mix flour and water.", "Why did the chicken?", "one, two."],
        "rejected": ["I do not know.", "Bread is food.", "No.", "five."],
        **EXTRA,
        **more,
    }  # fmt: skip
    save_curated(Dataset.from_dict(rows), tmp_path / "set", "dissimilar")
    return load_dataset(str(tmp_path / "set"), "dissimilar", split="train")


@pytest.mark.parametrize("conversational", [False, True], ids=["standard", "conversational"])
def test_trl_trainers_drop_every_provenance_column_as_pushed(tmp_path, llama_lm_dir, conversational):
    pairs = _extra_set(tmp_path, conversational)
    assert set(EXTRA) <= set(pairs.column_names)
    # DPO's default (no precompute) runs the reference model and ignores ref_*_logps: were they used, the
    # first loss would be -log sigmoid(0.1 * (100 - 1)), not log 2.
    assert_trains_in_trl(pairs, str(llama_lm_dir), tmp_path)


def test_reward_trainer_uses_a_margin_column_as_the_card_says(tmp_path, llama_lm_dir):
    margins = [2.0, 0.5, 1.0, 3.0]
    pairs = _extra_set(tmp_path, False, margin=margins)
    first = train_reward_with_trl(pairs, str(llama_lm_dir), tmp_path)[0]
    # the first batch (seeded order) holds two of the pairs: its loss is the mean of -log sigmoid(-margin)
    candidates = {
        (a, b): (math.log1p(math.exp(a)) + math.log1p(math.exp(b))) / 2
        for i, a in enumerate(margins)
        for b in margins[i + 1 :]
    }
    assert any(first == pytest.approx(v, abs=1e-5) for v in candidates.values()), (first, candidates)
    assert first > LOG2


def test_dpo_precompute_fails_on_existing_reference_columns_as_the_card_says(tmp_path, llama_lm_dir):
    """TRL issue #3985: TRL recomputes reference log-probs and does not read the columns."""
    pairs = _extra_set(tmp_path, False)
    args = DPOConfig(
        output_dir=str(tmp_path / "o"),
        precompute_ref_log_probs=True,
        use_cpu=True,
        bf16=False,
        report_to="none",
    )
    with pytest.raises(ValueError):
        DPOTrainer(model=str(llama_lm_dir), args=args, train_dataset=pairs)
    DPOTrainer(model=str(llama_lm_dir), args=args, train_dataset=pairs.remove_columns(list(REF_COLUMNS)))


# --------------------------------------------------------------------------------------- the card's snippet


def _snippet(card: DatasetCard) -> str:
    block = re.search(r"## Load it\n\n```python\n(.*?)```", card.text, re.S)
    assert block is not None, card.text
    return block.group(1)


def test_card_snippet_trains_with_trl_on_the_pushed_set(hub, tmp_path, llama_lm_dir, monkeypatch):
    repo = _repo()
    from real_hub import push_curated

    push_curated(_canonical_chat(4), repo, "dissimilar")
    card = DatasetCard.load(hf_hub_download(repo, "README.md", repo_type="dataset"))
    code = _snippet(card)
    assert f'load_dataset("{repo}", "dissimilar", split="train")' in code
    assert "trainer.train()" in code and "DPOTrainer(" in code
    assert "`RewardTrainer` takes them the same way" in card.text
    # the same code on this CPU with the tiny model: the model id and the run's length are all that change
    # (the card's lines turn bf16 on only where a GPU has it)
    model = re.search(r'model="([^"]+)"', code).group(1)
    code = code.replace(f'"{model}"', repr(str(llama_lm_dir)))
    run = "max_steps=2, per_device_train_batch_size=2, logging_steps=1, "
    code = code.replace("DPOConfig(", f"DPOConfig({run}")
    code = code.replace('output_dir="', f'output_dir="{tmp_path}/')
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "card-snippet", "exec"), scope)
    losses = _losses(scope["trainer"])
    assert losses and losses[0] == pytest.approx(LOG2, abs=1e-6)


# --------------------------------------------------------------------- reference log-probs: record and reuse


def test_reference_logps_are_recorded_on_the_card_and_reused_by_train_dpo_for_that_model(
    tmp_path, llama_lm_dir, capsys
):
    model = str(llama_lm_dir)
    source = Dataset.from_list(TRL_CONVERSATIONAL[:4])
    source.to_json(tmp_path / "trl.jsonl")
    out = tmp_path / "set"
    code = main(
        [
            "curate", str(tmp_path / "trl.jsonl"), "--output-dir", str(out), "--embedder", model,
            "--embed-backend", "causal-lm", "--reference", model, "--reference-max-length", "64", "-q",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    spec = ReferenceSpec(model, None, "float32", 64, "keep_start")
    curated = load_curated(out, "all")
    assert curated.provenance.reference == spec.to_dict()
    text = (out / "README.md").read_text()
    assert f"reference log-probs (`ref_chosen_logps`, `ref_rejected_logps`) of `{model}`" in text
    assert "in `float32`" in text and "TRL issue #3985" in text

    # the values are what the engine computes inside train_dpo for the same model and settings
    again, again_spec = add_reference_logps(source, model, max_length=64)
    assert again_spec == spec
    expected = {r["chosen"][0]["content"]: (r[REF_COLUMNS[0]], r[REF_COLUMNS[1]]) for r in again}
    for row in curated.dataset["train"]:
        assert (row[REF_COLUMNS[0]], row[REF_COLUMNS[1]]) == pytest.approx(
            expected[row["chosen"][0]["content"]]
        )
        assert row[REF_COLUMNS[0]] < 0 and row[REF_COLUMNS[1]] < 0
    kw = {
        "output_dir": tmp_path / "m",
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "config": "all",
    }
    used = train_dpo(str(out), model, max_length=64, **kw)
    assert used.ref_logps_source == "dataset"
    assert used.first_loss == pytest.approx(LOG2, abs=1e-5)  # the stored values are the model's own
    other = train_dpo(str(out), model, max_length=32, **kw)  # other settings: recomputed
    assert other.ref_logps_source == "engine"
    assert train_dpo(curated, model, max_length=64, **kw).ref_logps_source == "dataset"
