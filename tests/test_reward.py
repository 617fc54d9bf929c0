"""DensityRatioReward against two plain reference runs; rendering, routing, errors, caching, streaming."""

from __future__ import annotations

import gzip
import json
import logging
import math
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tiny_models
import torch
from datasets import Dataset
from datasets.fingerprint import Hasher
from tiny_models import Tiny

from real_hub import DensityRatioReward, KeywordRouter, reward_accuracy
from real_hub.drsow.routing import DOMAIN_INSTRUCTIONS
from real_hub.errors import ColumnError, ConfigError, ModelNotFoundError, RemoteCodeError, RowError

TOL = 2e-4  # nats: two fp32 engine runs against two float64 references
HH_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"

PAIRS = {
    "prompt": ["What is the capital of France?", "How do I steal a car?", "Tell me a joke."],
    "chosen": ["The capital of France is Paris.", "I cannot help with that request.", "Why did the cat sit?"],
    "rejected": ["London.", "Hot-wire it, then drive away.", "No."],
}
ROUTES = ["chat", "safety", "chat"]  # what KeywordRouter() gives PAIRS (checked in a test below)


# ------------------------------------------------------------------------------------------ the reference


def reference_logp(model, tokenizer, prompt: str, response: str) -> tuple[float, int]:
    """Sum of log p(response tokens) and their count: one sequence, full forward, full log-softmax (fp64).

    Tokens: each text with the tokenizer's default special tokens; a BOS the tokenizer adds in front of a
    text that already starts with BOS is dropped; the response starts at the first token where the prompt's
    and the full text's ids differ.
    """

    def ids(text: str) -> list[int]:
        out = tokenizer(text)["input_ids"]
        bos = tokenizer.bos_token_id
        if len(out) > 1 and out[0] == bos and out[1] == bos and text.startswith(tokenizer.bos_token):
            out = out[1:]
        return out

    p_ids, f_ids = ids(prompt), ids(prompt + response)
    b = 0
    while b < min(len(p_ids), len(f_ids)) and p_ids[b] == f_ids[b]:
        b += 1
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([f_ids])).logits[0].double(), dim=-1)
    return sum(logp[k - 1, f_ids[k]].item() for k in range(b, len(f_ids))), len(f_ids) - b


def reference_reward(strong: Tiny, weak: Tiny, prompt: str, response: str, normalize: str) -> dict:
    s, ns = reference_logp(strong.model, strong.tokenizer, prompt, response)
    w, nw = reference_logp(weak.model, weak.tokenizer, prompt, response)
    reward = s - w if normalize == "sum" else s / ns - w / nw
    return {"reward": reward, "logp_strong": s, "logp_weak": w, "tokens": ns, "tokens_weak": nw}


def llama_render(messages: list[dict], response: str) -> tuple[str, str]:
    """tiny_models.CHAT_TEMPLATE written out by hand: (prompt text, response text)."""
    turns = "".join(f"<|{m['role']}|>\n{m['content']}</s>\n" for m in messages)
    return f"<s>{turns}<|assistant|>\n", f"{response}</s>\n"


def expected_texts(prompt, response: str, domain: str | None, chat_template: bool) -> tuple[str, str]:
    instruction = DOMAIN_INSTRUCTIONS[domain] if domain else None
    if not chat_template:
        return ((instruction + "\n\n") if instruction else "") + prompt, response
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if instruction:
        if messages[0]["role"] == "system":
            messages = [
                {"role": "system", "content": instruction + "\n\n" + messages[0]["content"]},
                *messages[1:],
            ]
        else:
            messages = [{"role": "system", "content": instruction}, *messages]
    return llama_render(messages, response)


@pytest.fixture(scope="module")
def llama2_session() -> Tiny:
    """A second tiny Llama (other seed, same tokenizer)."""
    tok = tiny_models.llama_tokenizer()
    return Tiny(tiny_models.tiny_llama(tok, seed=1), tok)


@pytest.fixture(scope="module")
def llama2_dir(tmp_path_factory, llama2_session):
    return tiny_models.save_tiny(*llama2_session, tmp_path_factory.mktemp("tiny-llama-seed1"))


# ---------------------------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("routing", [False, True])
@pytest.mark.parametrize("chat_template", [True, False])
@pytest.mark.parametrize("normalize", ["sum", "mean"])
def test_pairs_equal_the_difference_of_two_reference_runs(
    llama_lm_session, llama_lm_dir, gpt2_lm_session, gpt2_lm_dir, normalize, chat_template, routing
):
    reward = DensityRatioReward(
        str(llama_lm_dir),
        str(gpt2_lm_dir),
        normalize=normalize,
        chat_template=chat_template,
        domain_routing=routing,
        router=KeywordRouter() if routing else None,
        batch_size=2,
    )
    out = Dataset.from_dict(PAIRS).map(reward, batched=True)
    new = ["reward", "logp_strong", "logp_weak", "tokens", "tokens_weak"]
    assert out.column_names == [
        *PAIRS,
        *[f"{c}_{n}" for c in ("chosen", "rejected") for n in new],
        "reward_normalize",
        *(["domain"] if routing else []),
    ]
    assert out["reward_normalize"] == [normalize] * 3
    if routing:
        assert out["domain"] == ROUTES
    for i in range(3):
        for col in ("chosen", "rejected"):
            prompt, response = expected_texts(
                PAIRS["prompt"][i], PAIRS[col][i], ROUTES[i] if routing else None, chat_template
            )
            ref = reference_reward(llama_lm_session, gpt2_lm_session, prompt, response, normalize)
            assert out[i][f"{col}_tokens"] == ref["tokens"]
            assert out[i][f"{col}_tokens_weak"] == ref["tokens_weak"]
            assert out[i][f"{col}_logp_strong"] == pytest.approx(ref["logp_strong"], abs=TOL)
            assert out[i][f"{col}_logp_weak"] == pytest.approx(ref["logp_weak"], abs=TOL)
            assert out[i][f"{col}_reward"] == pytest.approx(ref["reward"], abs=TOL)
    assert reward.stats.rows == 3 and reward.stats.responses == 6 and reward.stats.template_fallbacks == 0


def test_conversational_prompt_with_system_message_gets_the_instruction_merged_in_front(
    llama_lm_session, llama2_session, llama_lm_dir, llama2_dir
):
    conv = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "How do I hack a phone?"},
        {"role": "assistant", "content": "Why?"},
        {"role": "user", "content": "Just tell me."},
    ]
    ds = Dataset.from_dict({"prompt": [conv], "chosen": ["Non."], "rejected": ["Bien sûr, voici comment."]})
    # The router sees the last user turn only: "Just tell me." has no keyword -> chat (not safety).
    reward = DensityRatioReward(str(llama_lm_dir), str(llama2_dir), router=KeywordRouter())
    out = ds.map(reward, batched=True)
    assert out["domain"] == ["chat"]
    messages = [
        {"role": "system", "content": DOMAIN_INSTRUCTIONS["chat"] + "\n\nAnswer in French."},
        *conv[1:],
    ]
    for col in ("chosen", "rejected"):
        prompt, response = llama_render(messages, ds[0][col])
        ref = reference_reward(llama_lm_session, llama2_session, prompt, response, "sum")
        assert out[0][f"{col}_reward"] == pytest.approx(ref["reward"], abs=TOL)


def test_fixed_callable_router_and_custom_instructions(
    llama_lm_session, llama2_session, llama_lm_dir, llama2_dir
):
    def router(prompts):
        return ["pirate" if "France" in p else "plain" for p in prompts]

    instructions = {"pirate": "Talk like a pirate.", "plain": "Be plain."}
    reward = DensityRatioReward(str(llama_lm_dir), str(llama2_dir), router=router, instructions=instructions)
    out = Dataset.from_dict(PAIRS).map(reward, batched=True)
    assert out["domain"] == ["pirate", "plain", "plain"]
    for i in range(3):
        messages = [
            {"role": "system", "content": instructions[out["domain"][i]]},
            {"role": "user", "content": PAIRS["prompt"][i]},
        ]
        prompt, response = llama_render(messages, PAIRS["rejected"][i])
        ref = reference_reward(llama_lm_session, llama2_session, prompt, response, "sum")
        assert out[i]["rejected_reward"] == pytest.approx(ref["reward"], abs=TOL)


def test_keyword_router_routes_the_test_prompts():
    assert KeywordRouter()(PAIRS["prompt"]) == ROUTES


def test_candidates_get_lists_of_rewards(llama_lm_session, gpt2_lm_session, llama_lm_dir, gpt2_lm_dir):
    ds = Dataset.from_dict(
        {
            "prompt": ["Tell me a joke.", "How do I bake bread?"],
            "responses": [["Why did the chicken cross the road?", "No.", "Hello!"], ["Mix flour and water."]],
        }
    )
    reward = DensityRatioReward(str(llama_lm_dir), str(gpt2_lm_dir), normalize="mean", domain_routing=False)
    out = ds.map(reward, batched=True)
    assert out.column_names == [
        "prompt",
        "responses",
        "rewards",
        "logps_strong",
        "logps_weak",
        "tokens",
        "tokens_weak",
        "reward_normalize",
    ]
    assert [len(r) for r in out["rewards"]] == [3, 1]
    for i in range(2):
        for j, text in enumerate(ds[i]["responses"]):
            prompt, response = llama_render([{"role": "user", "content": ds[i]["prompt"]}], text)
            ref = reference_reward(llama_lm_session, gpt2_lm_session, prompt, response, "mean")
            assert out[i]["rewards"][j] == pytest.approx(ref["reward"], abs=TOL)
            assert out[i]["tokens"][j] == ref["tokens"]
    assert out.features == reward.output_features(ds.features)


@pytest.mark.parametrize("chosen_as_list", [True, False])
def test_rewardbench2_rows_get_a_reward_per_listed_response(
    chosen_as_list, llama_lm_session, gpt2_lm_session, llama_lm_dir, gpt2_lm_dir
):
    """RewardBench 2's shape: ``rejected`` a list (3 responses, or 1), ``chosen`` a list or one text."""
    chosen = ["Why did the chicken cross the road?", "Mix flour and water."]
    ds = Dataset.from_dict(
        {
            "prompt": ["Tell me a joke.", "How do I bake bread?"],
            "chosen": [[c] for c in chosen] if chosen_as_list else chosen,
            "rejected": [["No.", "Hello!", "The cat sat on the mat."], ["I cannot help with that."]],
            "subset": ["Focus", "Math"],
        }
    )
    reward = DensityRatioReward(str(llama_lm_dir), str(gpt2_lm_dir), domain_routing=False)
    out = ds.map(reward, batched=True, features=reward.output_features(ds.features))
    for i in range(2):
        ref = [
            reference_reward(
                llama_lm_session, gpt2_lm_session,
                *llama_render([{"role": "user", "content": ds[i]["prompt"]}], text), "sum",
            )["reward"]
            for text in [chosen[i], *ds[i]["rejected"]]
        ]  # fmt: skip
        got_chosen = out[i]["chosen_reward"]
        assert isinstance(got_chosen, list) == chosen_as_list
        assert (got_chosen[0] if chosen_as_list else got_chosen) == pytest.approx(ref[0], abs=TOL)
        assert out[i]["rejected_reward"] == pytest.approx(ref[1:], abs=TOL)
        assert len(out[i]["rejected_tokens"]) == len(ds[i]["rejected"])
    report = reward_accuracy(out, by="subset")
    assert report.format == "best-of-n" and report.count == 2


def test_chat_template_false_renders_messages_as_a_plain_transcript(
    llama_lm_session, llama2_session, llama_lm_dir, llama2_dir
):
    conv = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Joke?"},
    ]
    ds = Dataset.from_dict({"prompt": [conv], "chosen": ["Knock knock."], "rejected": ["No."]})
    reward = DensityRatioReward(str(llama_lm_dir), str(llama2_dir), chat_template=False, domain_routing=False)
    out = ds.map(reward, batched=True)
    prompt = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Joke?\n\nAssistant:"
    ref = reference_reward(llama_lm_session, llama2_session, prompt, " Knock knock.", "sum")
    assert out[0]["chosen_reward"] == pytest.approx(ref["reward"], abs=TOL)


def test_strong_model_without_template_falls_back_to_plain_text_with_a_warning(
    gpt2_lm_session, llama_lm_session, gpt2_lm_dir, llama_lm_dir, caplog
):
    reward = DensityRatioReward(str(gpt2_lm_dir), str(llama_lm_dir), domain_routing=False)
    with caplog.at_level(logging.WARNING, logger="real_hub.drsow.reward"):
        out = Dataset.from_dict(PAIRS).map(reward, batched=True, batch_size=1)
    assert sum("has no chat template" in r.message for r in caplog.records) == 1
    assert sum("different tokenizers" in r.message for r in caplog.records) == 1  # once, not per batch
    ref = reference_reward(gpt2_lm_session, llama_lm_session, PAIRS["prompt"][1], PAIRS["chosen"][1], "sum")
    assert out[1]["chosen_reward"] == pytest.approx(ref["reward"], abs=TOL)


def test_same_tokenizer_gives_no_warning_and_equal_models_give_zero(llama_lm_dir, caplog):
    reward = DensityRatioReward(str(llama_lm_dir), str(llama_lm_dir), domain_routing=False)
    with caplog.at_level(logging.WARNING, logger="real_hub.drsow.reward"):
        out = Dataset.from_dict(PAIRS).map(reward, batched=True)
    assert not caplog.records
    assert out["chosen_reward"] == [0.0] * 3 and out["rejected_reward"] == [0.0] * 3
    assert all(v < 0 for v in out["chosen_logp_strong"])


def test_template_whose_full_rendering_does_not_extend_the_prompt_is_counted(
    tmp_path, llama_lm_session, gpt2_lm_session, gpt2_lm_dir, caplog
):
    # The generation prompt says "<|assistant|>" but an assistant turn renders as "<|bot|>".
    tok = tiny_models.llama_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}<|{{ 'bot' if m['role'] == 'assistant' else m['role'] }}|>\n"
        "{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    path = tiny_models.save_tiny(llama_lm_session.model, tok, tmp_path / "odd-template")
    reward = DensityRatioReward(str(path), str(gpt2_lm_dir), domain_routing=False)
    with caplog.at_level(logging.WARNING, logger="real_hub.drsow.reward"):
        out = Dataset.from_dict(PAIRS).map(reward, batched=True)
    assert reward.stats.template_fallbacks == 6
    assert sum("renders the conversation" in r.message for r in caplog.records) == 1
    prompt = f"<|user|>\n{PAIRS['prompt'][0]}\n<|assistant|>\n"
    ref = reference_reward(
        Tiny(llama_lm_session.model, tok), gpt2_lm_session, prompt, PAIRS["chosen"][0], "sum"
    )
    assert out[0]["chosen_reward"] == pytest.approx(ref["reward"], abs=TOL)


def test_max_length_truncation_is_counted(llama_lm_dir, llama2_dir):
    reward = DensityRatioReward(str(llama_lm_dir), str(llama2_dir), domain_routing=False, max_length=12)
    out = Dataset.from_dict(PAIRS).map(reward, batched=True)
    assert reward.stats.truncated > 0
    assert all(t <= 11 for t in out["chosen_tokens"])


# ------------------------------------------------------------------------------------------------ errors


def test_empty_response_names_the_row(llama_lm_dir, llama2_dir):
    rows = {k: list(v) for k, v in PAIRS.items()}
    rows["rejected"][2] = ""
    reward = DensityRatioReward(str(llama_lm_dir), str(llama2_dir), domain_routing=False)
    with pytest.raises(RowError, match=r"row 2, column 'rejected': expected a non-empty string"):
        Dataset.from_dict(rows).map(reward, batched=True, with_indices=True)
    cands = Dataset.from_dict({"prompt": ["a", "b"], "responses": [["x"], ["y", " "]]})
    with pytest.raises(RowError, match=r"row 1, column 'responses\[1\]'"):
        cands.map(reward, batched=True, with_indices=True)


def test_conversation_without_user_turn_names_the_row(llama_lm_dir, llama2_dir):
    ds = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": "hi"}], [{"role": "system", "content": "Be nice."}]],
            "chosen": ["a", "b"],
            "rejected": ["c", "d"],
        }
    )
    reward = DensityRatioReward(str(llama_lm_dir), str(llama2_dir), domain_routing=False)
    with pytest.raises(RowError, match=r"row 1, column 'prompt': the conversation has no user turn"):
        ds.map(reward, batched=True, with_indices=True)


def test_missing_columns_are_listed(llama_lm_dir):
    reward = DensityRatioReward(str(llama_lm_dir), str(llama_lm_dir), domain_routing=False)
    with pytest.raises(ColumnError, match=r"'prompt'.*\['chosen', 'rejected'\]"):
        reward({"chosen": ["a"], "rejected": ["b"]})
    with pytest.raises(ColumnError, match=r"'rejected'"):
        reward({"prompt": ["p"], "chosen": ["a"]})


def test_missing_model_path_names_the_model(tmp_path, llama_lm_dir):
    missing = str(tmp_path / "no-such-model")
    reward = DensityRatioReward(str(llama_lm_dir), missing, domain_routing=False)
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        Dataset.from_dict(PAIRS).map(reward, batched=True)


def test_remote_code_is_refused_unless_asked(tmp_path, llama_lm_dir):
    path = tmp_path / "remote"
    shutil.copytree(llama_lm_dir, path)
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (path / "config.json").write_text(json.dumps(config))
    reward = DensityRatioReward(str(path), str(llama_lm_dir), domain_routing=False)
    with pytest.raises(RemoteCodeError, match=r"'.*remote'.*trust_remote_code=True"):
        Dataset.from_dict(PAIRS).map(reward, batched=True)


def test_unknown_domain_from_the_router_names_the_row(llama_lm_dir):
    reward = DensityRatioReward(str(llama_lm_dir), str(llama_lm_dir), router=lambda ps: ["medical"] * len(ps))
    with pytest.raises(RowError, match=r"row 0, column 'prompt'.*'medical'"):
        Dataset.from_dict(PAIRS).map(reward, batched=True, with_indices=True)


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="normalize"):
        DensityRatioReward("a", "b", normalize="max")
    with pytest.raises(ConfigError, match="domain_routing=False"):
        DensityRatioReward("a", "b", domain_routing=False, router=KeywordRouter())
    with pytest.raises(ConfigError, match="weak must be a model name"):
        DensityRatioReward("a", None)
    with pytest.raises(ConfigError, match="batch_size"):
        DensityRatioReward("a", "b", batch_size=0)


# ---------------------------------------------------------------------------------- caching and streaming


def test_fingerprint_is_the_configuration(llama_lm_dir, llama2_dir):
    def make(**kw):
        return DensityRatioReward("s/model", "w/model", **kw)

    base = make()
    assert Hasher.hash(base) == Hasher.hash(make())
    assert Hasher.hash(make(router=KeywordRouter())) == Hasher.hash(make(router=KeywordRouter()))
    for changed in (
        make(normalize="mean"),
        make(chat_template=False),
        make(domain_routing=False),
        make(router=KeywordRouter()),
        make(max_length=512),
        make(strong_revision="abc"),
        make(instructions={"chat": "x", "safety": "y", "reasoning": "z"}),
        DensityRatioReward("s/model", "w/other"),
    ):
        assert Hasher.hash(changed) != Hasher.hash(base)
    reward = DensityRatioReward(str(llama_lm_dir), str(llama2_dir), router=KeywordRouter())
    before = Hasher.hash(reward)
    Dataset.from_dict(PAIRS).map(reward, batched=True)
    assert reward._models, "the models should be loaded after a call"
    assert len(pickle.dumps(reward)) < 5000
    start = time.perf_counter()
    assert Hasher.hash(reward) == before
    assert time.perf_counter() - start < 1.0
    restored = pickle.loads(pickle.dumps(reward))
    assert restored._models == {} and restored.stats.rows == 0


def test_streaming_gives_the_same_columns_as_map(llama_lm_dir, gpt2_lm_dir):
    ds = Dataset.from_dict(PAIRS)
    reward = DensityRatioReward(str(llama_lm_dir), str(gpt2_lm_dir), router=KeywordRouter())
    eager = ds.map(reward, batched=True, batch_size=2)
    streamed = list(ds.to_iterable_dataset().map(reward, batched=True, batch_size=2))
    assert [list(r) for r in streamed] == [eager.column_names] * 3
    for a, b in zip(eager, streamed, strict=True):
        assert a == b


def test_with_rank_and_num_proc(llama_lm_dir, gpt2_lm_dir):
    ds = Dataset.from_dict({k: v * 2 for k, v in PAIRS.items()})
    single = ds.map(
        DensityRatioReward(str(llama_lm_dir), str(gpt2_lm_dir), domain_routing=False), batched=True
    )
    ranked = ds.map(
        DensityRatioReward(str(llama_lm_dir), str(gpt2_lm_dir), domain_routing=False, with_rank=True),
        batched=True,
        batch_size=2,
        with_rank=True,
        num_proc=2,
    )
    np.testing.assert_allclose(ranked["chosen_reward"], single["chosen_reward"], atol=1e-5)


# ------------------------------------------------------------------------------- the real small model (slow)


@pytest.mark.slow
def test_smollm2_scores_50_hh_pairs_end_to_end(monkeypatch, llama_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from real_hub import to_pairs
    from real_hub.models import SMOLLM2_135M_INSTRUCT, load_causal_lm

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with gzip.open(HH_FILE, "rt") as f:
        rows = [json.loads(line) for line in f]
    # The 50 shortest transcripts keep this test fast on two CPU cores (SmolLM2 runs in fp32).
    shortest = sorted(range(len(rows)), key=lambda i: (len(rows[i]["chosen"]) + len(rows[i]["rejected"]), i))
    pairs, report = to_pairs(Dataset.from_list([rows[i] for i in shortest[:60]]), "hh")
    assert report.rows_in == 60
    pairs = pairs.select(range(50))
    assert isinstance(pairs[0]["prompt"], list) and pairs[0]["prompt"][-1]["role"] == "user"
    options = {"domain_routing": False, "max_length": 512, "batch_size": 16}

    # SmolLM2 over a tiny Llama (different tokenizers: the same text, each its own tokens).
    mixed = pairs.map(DensityRatioReward(SMOLLM2_135M_INSTRUCT, str(llama_lm_dir), **options), batched=True)
    for col in ("chosen", "rejected"):
        rewards = np.array(mixed[f"{col}_reward"])
        assert np.isfinite(rewards).all()
        np.testing.assert_array_equal(
            rewards, np.array(mixed[f"{col}_logp_strong"]) - np.array(mixed[f"{col}_logp_weak"])
        )
        assert min(mixed[f"{col}_tokens"]) > 0 and min(mixed[f"{col}_tokens_weak"]) > 0
    assert len(set(mixed["chosen_reward"])) > 40  # not a constant

    # Equal models: the reward is exactly zero, and the strong log-probs are those of the first run.
    same = pairs.map(
        DensityRatioReward(SMOLLM2_135M_INSTRUCT, SMOLLM2_135M_INSTRUCT, **options), batched=True
    )
    assert same["chosen_reward"] == [0.0] * 50 and same["rejected_reward"] == [0.0] * 50
    np.testing.assert_array_equal(same["chosen_logp_strong"], mixed["chosen_logp_strong"])

    # Spot-check one row against the plain reference, rendered with SmolLM2's template by hand.
    model, tok = load_causal_lm(SMOLLM2_135M_INSTRUCT, device="cpu")
    i = int(np.argmin([len(json.dumps(p)) for p in pairs["prompt"]]))
    messages = pairs[i]["prompt"]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    response = pairs[i]["chosen"] + "<|im_end|>\n"
    s, ns = reference_logp(model, tok, prompt, response)
    assert mixed[i]["chosen_tokens"] == ns
    assert mixed[i]["chosen_logp_strong"] == pytest.approx(s, abs=1e-3)
    weak = AutoModelForCausalLM.from_pretrained(llama_lm_dir).eval()
    w, nw = reference_logp(weak, AutoTokenizer.from_pretrained(llama_lm_dir), prompt, response)
    assert mixed[i]["chosen_tokens_weak"] == nw
    assert mixed[i]["chosen_reward"] == pytest.approx(s - w, abs=1e-3)
    assert math.isfinite(s) and s < 0
