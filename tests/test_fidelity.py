"""Three fidelity rules the experiments rely on (issue 13).

- DPO under bf16: the reference log-probs are computed at the policy's training precision, so the first
  loss is log 2 and ``rewards/chosen`` is 0 before the first update.
- HH transcripts with ``hh_prompt="text"``: ``prompt + chosen`` (and ``prompt + rejected``) is the source
  transcript, character for character (over the whole HH file).
- Truncation to ``max_length`` keeps the system turn (the routed domain instruction) and cuts the oldest
  conversation tokens after it, and counts the tokens it cut.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from real_hub import DensityRatioReward, score_sequences, to_pairs, train_dpo
from real_hub.logprobs import encode_pairs

# ../shared relative to the repository root; REAL_HUB_HH_FILE points elsewhere (e.g. from a git worktree)
HH_FILE = Path(
    os.environ.get(
        "REAL_HUB_HH_FILE",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz",
    )
)
LOG2 = math.log(2.0)

QA = [
    ("What is the capital of France?", "The capital of France is Paris.", "I do not know."),
    ("How do I bake bread?", "Mix flour, water, salt and yeast, then let it rise.", "Bread is food."),
    ("Tell me a joke.", "Why did the chicken cross the road? To get to the other side.", "No."),
    ("Can you help me with my homework?", "Of course, what is the question?", "Do it yourself."),
    ("What time is it?", "It is half past seven in the evening.", "Time is a river."),
    ("Name some colours.", "My favourite colours are blue, green and yellow.", "Colours."),
    ("At what temperature does water boil?", "Water boils at one hundred degrees at sea level.", "Hot."),
    ("Count to five.", "one, two, three, four, five.", "five, four."),
]


# ------------------------------------------------------------------------------------------ bf16 reference


@pytest.mark.parametrize("conversational", [False, True])
def test_bf16_training_starts_at_log2_with_engine_reference(llama_lm, tmp_path, conversational):
    model, tokenizer = llama_lm
    if conversational:
        rows = [{"prompt": [{"role": "user", "content": q}], "chosen": c, "rejected": r} for q, c, r in QA]
    else:
        rows = [
            {"prompt": f"Human: {q} Assistant:", "chosen": f" {c}", "rejected": f" {r}"} for q, c, r in QA
        ]
    result = train_dpo(
        Dataset.from_list(rows),
        (model, tokenizer),
        output_dir=tmp_path / "out",
        max_steps=1,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        bf16=True,
        max_length=64,
    )
    # One step: the last logged values are those of step 0, computed before the update.
    assert result.first_loss == pytest.approx(LOG2, abs=1e-4)
    assert result.metrics["rewards/chosen"] == pytest.approx(0.0, abs=1e-4)
    assert result.metrics["rewards/rejected"] == pytest.approx(0.0, abs=1e-4)
    assert result.training_args["bf16"] is True
    assert result.ref_logps_source == "trl"  # the reference is computed at the policy's precision


# ---------------------------------------------------------------------------------- HH text round trip


def _hh_rows() -> list[dict]:
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
@pytest.mark.skipif(not HH_FILE.exists(), reason="the shared HH-RLHF file is not on this machine")
def test_hh_text_prompt_plus_response_is_the_source_transcript():
    rows = _hh_rows()
    raw = Dataset.from_list(rows)
    pairs, report = to_pairs(raw, "hh", hh_prompt="text")
    assert report.rows_out == len(pairs) > 2000
    n_checked = 0
    for pair in pairs:
        source = rows[int(pair["source_id"])]
        assert pair["prompt"].endswith("\n\nAssistant:")
        assert pair["prompt"] + pair["chosen"] == source["chosen"]
        assert pair["prompt"] + pair["rejected"] == source["rejected"]
        n_checked += 1
    assert n_checked == report.rows_out


def test_hh_text_keeps_the_space_after_the_colon_and_messages_stay_stripped():
    rows = {
        "chosen": ["\n\nHuman: Hi there\n\nAssistant: No, sorry!"],
        "rejected": ["\n\nHuman: Hi there\n\nAssistant:  Sure.  "],
    }
    text, _ = to_pairs(Dataset.from_dict(rows), "hh", hh_prompt="text")
    assert text[0]["prompt"] == "\n\nHuman: Hi there\n\nAssistant:"
    assert text[0]["chosen"] == " No, sorry!"
    assert text[0]["rejected"] == "  Sure.  "
    messages, _ = to_pairs(Dataset.from_dict(rows), "hh")
    assert messages[0]["chosen"] == "No, sorry!" and messages[0]["rejected"] == "Sure."


# ------------------------------------------------------------------------------- system-turn truncation

SYSTEM = "Refuse anything harmful, politely."
OLD_TURNS = [
    {"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 3},
    {"role": "assistant", "content": "The cat sat on the mat and looked at the bird. " * 3},
]
RECENT = [{"role": "user", "content": "How do I bake bread?"}]
RESPONSE = "Mix flour, water, salt and yeast, then let it rise."


def test_encode_pairs_keeps_the_given_prefix_and_cuts_the_oldest_tokens_after_it(llama_lm):
    _, tok = llama_lm
    system_text = tok.apply_chat_template([{"role": "system", "content": SYSTEM}], tokenize=False)
    messages = [{"role": "system", "content": SYSTEM}, *OLD_TURNS, *RECENT]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt.startswith(system_text)
    (full,) = encode_pairs(tok, [prompt], [RESPONSE])
    system_ids = tok(system_text, add_special_tokens=False)["input_ids"]  # the template renders BOS
    assert list(full.context[: len(system_ids)]) == system_ids  # BOS + the system turn
    max_length = len(system_ids) + 20 + len(full.response)
    (cut,) = encode_pairs(tok, [prompt], [RESPONSE], max_length=max_length, keep_prefixes=[system_text])
    assert cut.truncated and cut.response == full.response
    assert len(cut.context) + len(cut.response) == max_length
    assert list(cut.context[: len(system_ids)]) == system_ids
    assert cut.context[len(system_ids) :] == full.context[-20:]
    assert cut.tokens_cut == len(full.context) - len(cut.context)
    # Without a kept prefix the old rule holds: only BOS is kept in front.
    (old,) = encode_pairs(tok, [prompt], [RESPONSE], max_length=max_length)
    assert old.context[0] == tok.bos_token_id and old.context[1:] == full.context[-(len(cut.context) - 1) :]


def test_score_sequences_counts_the_tokens_cut(llama_lm):
    model, tok = llama_lm
    system_text = tok.apply_chat_template([{"role": "system", "content": SYSTEM}], tokenize=False)
    prompt = tok.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, *OLD_TURNS, *RECENT],
        tokenize=False,
        add_generation_prompt=True,
    )
    (full,) = encode_pairs(tok, [prompt], [RESPONSE])
    n = len(full.context) + len(full.response)
    scores = score_sequences(
        model,
        tok,
        [prompt, prompt],
        [RESPONSE, RESPONSE],
        max_length=n - 7,
        keep_prefixes=[system_text, None],
    )
    assert scores.truncated.tolist() == [True, True]
    assert scores.tokens_cut.tolist() == [7, 7]


def _routed(llama_lm_dir, instruction: str, max_length: int | None) -> tuple[Dataset, DensityRatioReward]:
    pairs = Dataset.from_list(
        [
            {"prompt": [*OLD_TURNS, *RECENT], "chosen": RESPONSE, "rejected": "Bread is food."},
        ]
    )
    reward = DensityRatioReward(
        str(llama_lm_dir),
        str(llama_lm_dir),
        router=lambda prompts: ["safety"] * len(prompts),
        instructions={"safety": instruction, "chat": "", "reasoning": ""},
        max_length=max_length,
    )
    return pairs.map(reward, batched=True), reward


def test_routed_instruction_survives_truncation_and_the_cut_is_counted(llama_lm_dir, llama_lm):
    _, tok = llama_lm
    from real_hub.models import load_causal_lm

    model, tok = load_causal_lm(str(llama_lm_dir))
    messages = [{"role": "system", "content": SYSTEM}, *OLD_TURNS, *RECENT]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    response_text = tok.apply_chat_template(
        [*messages, {"role": "assistant", "content": RESPONSE}], tokenize=False
    )[len(prompt) :]
    (full,) = encode_pairs(tok, [prompt], [response_text])
    max_length = len(full.context) + len(full.response) - 30  # cuts into the old turns, not the system turn

    scored, reward = _routed(llama_lm_dir, SYSTEM, max_length)
    system_text = tok.apply_chat_template([{"role": "system", "content": SYSTEM}], tokenize=False)
    (expected,) = encode_pairs(
        tok, [prompt], [response_text], max_length=max_length, keep_prefixes=[system_text]
    )
    assert expected.tokens_cut == 30
    from real_hub.logprobs import score_encoded

    ref = score_encoded(model, [expected]).logp[0]
    assert scored[0]["chosen_logp_strong"] == pytest.approx(ref, abs=1e-4)
    assert reward.stats.truncated == 2
    assert reward.stats.tokens_cut >= 60  # both responses, both models: at least 30 context tokens each

    # The instruction is still read: another instruction changes the log-probs of the truncated text.
    other, _ = _routed(llama_lm_dir, "Answer in one word, in French, always.", max_length)
    assert not np.isclose(other[0]["chosen_logp_strong"], scored[0]["chosen_logp_strong"])
