"""The sequence log-prob engine against a plain per-sequence reference (full forward, full log-softmax)."""

from __future__ import annotations

import copy
import logging
import random

import numpy as np
import pytest
import tiny_models
import torch
from tiny_models import MERGE_PROMPT, MERGE_RESPONSE, Tiny
from transformers import AutoModelForCausalLM, AutoTokenizer, MistralConfig, MistralForCausalLM

from real_hub.errors import ConfigError, RowError
from real_hub.logprobs import DISABLE_PROGRESS_ENV, EncodedPair, encode_pairs, score_encoded, score_sequences

TOL = 1e-4  # nats, fp32

# 5 prompts x 1-4 responses, mixed lengths.
GROUPS = {
    "Human: What is the capital of France? Assistant:": [
        " Paris.",
        " The capital of France is Paris, of course.",
    ],
    "Hello": [" there!", " world.", " again, how are you today? I am fine, thank you very much.", "!"],
    "Human: How do I bake bread? Assistant:": [" Mix flour, water, salt and yeast, then let it rise."],
    "The quick brown fox": [" jumps over the lazy dog.", " sat on the mat.", " reads a book every week."],
    "Human: Tell me a joke about a cat that sat on the mat and looked at the bird. Assistant:": [
        " No.",
        " Why did the cat cross the road? To get to the other side.",
    ],
}
PROMPTS = [p for p, rs in GROUPS.items() for _ in rs]
RESPONSES = [r for rs in GROUPS.values() for r in rs]


# ------------------------------------------------------------------------------------------- the reference


def reference_split(tokenizer, prompt: str, response: str) -> tuple[list[int], list[int]]:
    """Context/response ids by the documented rule: first token where prompt and prompt+response differ."""
    p_ids = tokenizer(prompt)["input_ids"]
    f_ids = tokenizer(prompt + response)["input_ids"]
    b = 0
    while b < min(len(p_ids), len(f_ids)) and p_ids[b] == f_ids[b]:
        b += 1
    return f_ids[:b], f_ids[b:]


def reference_token_logps(model, context: list[int], response: list[int]) -> np.ndarray:
    """One sequence, full forward, full log-softmax over the vocabulary, in float64."""
    ids = torch.tensor([list(context) + list(response)])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    n = len(context)
    return np.array([logp[n + k - 1, t].item() for k, t in enumerate(response)])


def reference_scores(model, tokenizer, prompts, responses) -> list[np.ndarray]:
    return [
        reference_token_logps(model, *reference_split(tokenizer, p, r))
        for p, r in zip(prompts, responses, strict=True)
    ]


@pytest.fixture(scope="module")
def references(gpt2_lm_session: Tiny, llama_lm_session: Tiny) -> dict[str, tuple[Tiny, list[np.ndarray]]]:
    return {
        name: (tiny, reference_scores(tiny.model, tiny.tokenizer, PROMPTS, RESPONSES))
        for name, tiny in (("gpt2", gpt2_lm_session), ("llama", llama_lm_session))
    }


# ----------------------------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("share_prompts", [None, True, False])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 16])
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_matches_reference(references, name, batch_size, share_prompts):
    (model, tokenizer), ref = references[name]
    order = list(range(len(PROMPTS)))
    random.Random(batch_size).shuffle(order)
    scores = score_sequences(
        model,
        tokenizer,
        [PROMPTS[i] for i in order],
        [RESPONSES[i] for i in order],
        batch_size=batch_size,
        share_prompts=share_prompts,
        return_token_logps=True,
    )
    for j, i in enumerate(order):
        assert scores.n_tokens[j] == len(ref[i])
        assert scores.logp[j] == pytest.approx(ref[i].sum(), abs=TOL)
        np.testing.assert_allclose(scores.token_logps[j], ref[i], atol=TOL)
    np.testing.assert_allclose(scores.mean, scores.logp / scores.n_tokens)
    assert not scores.truncated.any()


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_prompt_caches_held_in_small_windows(references, name):
    (model, tokenizer), ref = references[name]
    # A tiny memory budget: every window holds one batch of prompts, the responses come from several.
    scores = score_sequences(
        model,
        tokenizer,
        PROMPTS,
        RESPONSES,
        batch_size=2,
        cache_bytes=1,
        share_prompts=True,
        strategy="cache",
    )
    np.testing.assert_allclose(scores.logp, [r.sum() for r in ref], atol=TOL)


def test_result_does_not_depend_on_input_order(llama_lm: Tiny):
    model, tokenizer = llama_lm
    first = score_sequences(model, tokenizer, PROMPTS, RESPONSES, batch_size=3)
    perm = np.random.default_rng(0).permutation(len(PROMPTS))
    second = score_sequences(
        model, tokenizer, [PROMPTS[i] for i in perm], [RESPONSES[i] for i in perm], batch_size=3
    )
    # Batches are made from the contents, not the order: the very same numbers come back, permuted.
    np.testing.assert_array_equal(second.logp, first.logp[perm])


def test_prompt_computed_once_per_batch_of_its_responses(gpt2_lm: Tiny):
    model, tokenizer = gpt2_lm
    seen = []
    hook = model.transformer.register_forward_pre_hook(
        lambda mod, args, kw: seen.append(kw["input_ids"].shape), with_kwargs=True
    )
    prompt = "Human: What is the capital of France? Assistant:"
    responses = [" Paris.", " It is Paris.", " Paris, France.", " Lyon? No, Paris."]
    score_sequences(model, tokenizer, [prompt] * 4, responses, batch_size=16, strategy="cache")
    score_sequences(model, tokenizer, [prompt] * 4, responses, batch_size=16, strategy="packed")
    hook.remove()
    n_prompt = len(tokenizer(prompt)["input_ids"])
    lengths = [len(reference_split(tokenizer, prompt, r)[1]) for r in responses]
    # Cache: one pass over the prompt alone, then one over the four responses without the prompt.
    # Packed: one row, the prompt once and the four responses after it. (The first packed call also
    # runs a small probe: rows of at most 8 tokens.)
    assert [shape for shape in seen if shape[1] > 8] == [
        (1, n_prompt),
        (4, max(lengths)),
        (1, n_prompt + sum(lengths)),
    ]


# ------------------------------------------------------------------------------------------ packed prompts


def with_attention(model, attn: str):
    """A copy of ``model`` running attention implementation ``attn``."""
    model = copy.deepcopy(model)
    model.set_attn_implementation(attn)
    assert model.config._attn_implementation == attn
    return model


class _RowShapes:
    """Records the ``input_ids`` shape of every forward of the model's body."""

    def __init__(self, model) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.handle = model.base_model.register_forward_pre_hook(
            lambda mod, args, kw: self.shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
        )


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 16])
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_packed_matches_reference(references, name, batch_size, attn):
    (model, tokenizer), ref = references[name]
    model = with_attention(model, attn)
    order = list(range(len(PROMPTS)))
    random.Random(batch_size + 100).shuffle(order)
    scores = score_sequences(
        model,
        tokenizer,
        [PROMPTS[i] for i in order],
        [RESPONSES[i] for i in order],
        batch_size=batch_size,
        strategy="packed",
        return_token_logps=True,
    )
    for j, i in enumerate(order):
        assert scores.n_tokens[j] == len(ref[i])
        np.testing.assert_allclose(scores.token_logps[j], ref[i], atol=TOL)
        assert scores.logp[j] == pytest.approx(ref[i].sum(), abs=TOL)
    # The same numbers whatever the input order (batches are made from the contents).
    again = score_sequences(model, tokenizer, PROMPTS, RESPONSES, batch_size=batch_size, strategy="packed")
    np.testing.assert_array_equal(again.logp[order], scores.logp)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_packed_rows_hold_a_prompt_once_and_all_its_responses(request, name, attn):
    model, tokenizer = request.getfixturevalue(f"{name}_lm")
    model = with_attention(model, attn)
    prompt = list(GROUPS)[1]  # four responses
    pairs = encode_pairs(tokenizer, [prompt] * 4, GROUPS[prompt])
    score_encoded(model, pairs[:1], strategy="packed")  # the probe runs on the first call
    rows = _RowShapes(model)
    scores = score_encoded(model, pairs, batch_size=4, strategy="packed")
    rows.handle.remove()
    assert rows.shapes == [(1, len(pairs[0].context) + sum(len(p.response) for p in pairs))]
    ref = [reference_token_logps(model, p.context, p.response).sum() for p in pairs]
    np.testing.assert_allclose(scores.logp, ref, atol=TOL)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_no_response_attends_to_another(request, name, attn):
    model, tokenizer = request.getfixturevalue(f"{name}_lm")
    model = with_attention(model, attn)
    vocab = len(tokenizer)
    context = tuple(tokenizer("Human: Hello. Assistant:")["input_ids"])
    checked = EncodedPair(context, (11, 12, 13, 14, 15))
    # Shorter responses go first in a packed row: the checked one comes after the one that changes.
    others = [EncodedPair(context, (20 + k, 30 + k, 40 + k, 50 + k)) for k in range(3)]
    others.append(EncodedPair(context, (vocab - 1,) * 4))
    rows = _RowShapes(model)
    got = [
        score_encoded(model, [checked, other], strategy="packed", return_token_logps=True).token_logps[0]
        for other in others
    ]
    rows.handle.remove()
    assert (1, len(context) + 4 + 5) in rows.shapes  # both responses in one row
    for values in got[1:]:
        np.testing.assert_allclose(values, got[0], atol=1e-6)
    ref = reference_token_logps(model, checked.context, checked.response)
    np.testing.assert_allclose(got[0], ref, atol=TOL)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_packed_rows_are_split_at_max_packed_length(references, name):
    (model, tokenizer), ref = references[name]
    pairs = encode_pairs(tokenizer, PROMPTS, RESPONSES)
    limit = 20
    rows = _RowShapes(model)
    scores = score_encoded(model, pairs, batch_size=16, strategy="packed", max_packed_length=limit)
    rows.handle.remove()
    # A row holds at most `limit` tokens, unless one prompt + one response alone is longer.
    longest_single = max(len(p.context) + len(p.response) for p in pairs)
    assert all(width <= max(limit, longest_single) for _, width in rows.shapes)
    assert sum(n for n, _ in rows.shapes) > len(GROUPS)  # some prompt's responses went to several rows
    np.testing.assert_allclose(scores.logp, [r.sum() for r in ref], atol=TOL)


def test_model_that_ignores_a_custom_mask_is_not_packed(llama_lm: Tiny):
    model, tokenizer = llama_lm
    ref = reference_scores(model, tokenizer, PROMPTS, RESPONSES)

    def plain_causal(module, args, kwargs):
        mask = kwargs["attention_mask"]
        if mask.ndim == 4:  # a model that attends causally whatever it is given: responses see each other
            assert mask.dtype == torch.bool  # sdpa
            kwargs["attention_mask"] = torch.ones_like(mask).tril()
        return args, kwargs

    model.base_model.register_forward_pre_hook(plain_causal, with_kwargs=True)
    with pytest.raises(ConfigError, match="strategy='packed' needs full attention"):
        score_sequences(model, tokenizer, PROMPTS, RESPONSES, strategy="packed")
    rows = _RowShapes(model)
    scores = score_sequences(model, tokenizer, PROMPTS, RESPONSES, batch_size=16)  # the cache path instead
    rows.handle.remove()
    assert len(rows.shapes) == 3  # singles in one pass, then prompts, then their responses
    np.testing.assert_allclose(scores.logp, [r.sum() for r in ref], atol=TOL)


def test_strategy_arguments(gpt2_lm: Tiny):
    with pytest.raises(ConfigError, match="strategy must be one of packed, cache, none"):
        score_sequences(*gpt2_lm, ["a"], [" b"], strategy="fast")
    with pytest.raises(ConfigError, match="share_prompts=False contradicts strategy='packed'"):
        score_sequences(*gpt2_lm, ["a"], [" b"], strategy="packed", share_prompts=False)
    with pytest.raises(ConfigError, match="share_prompts=True contradicts strategy='none'"):
        score_sequences(*gpt2_lm, ["a"], [" b"], strategy="none", share_prompts=True)
    with pytest.raises(ConfigError, match="max_packed_length"):
        score_sequences(*gpt2_lm, ["a"], [" b"], max_packed_length=0)


# ------------------------------------------------------------------------------------------- tokenization


@pytest.mark.parametrize("strategy", ["packed", "cache"])
@pytest.mark.parametrize("make", [tiny_models.gpt2_tokenizer, tiny_models.llama_tokenizer])
def test_boundary_token_merges_into_the_response(make, strategy):
    tokenizer = make()
    model = tiny_models.tiny_llama(tokenizer)
    p_ids = tokenizer(MERGE_PROMPT)["input_ids"]
    f_ids = tokenizer(MERGE_PROMPT + MERGE_RESPONSE)["input_ids"]
    assert f_ids[: len(p_ids)] != p_ids  # the case really merges
    hello = tokenizer.convert_tokens_to_ids("ĠHello")
    (pair,) = encode_pairs(tokenizer, [MERGE_PROMPT], [MERGE_RESPONSE])
    context, response = reference_split(tokenizer, MERGE_PROMPT, MERGE_RESPONSE)
    assert len(context) < len(p_ids) and response[0] == hello
    assert (list(pair.context), list(pair.response)) == (context, response)
    scores = score_sequences(
        model, tokenizer, [MERGE_PROMPT, MERGE_PROMPT], [MERGE_RESPONSE, "p"], strategy=strategy
    )
    assert scores.logp[0] == pytest.approx(reference_token_logps(model, context, response).sum(), abs=TOL)
    assert scores.n_tokens[0] == len(response)


@pytest.mark.parametrize("strategy", ["packed", "cache"])
def test_bos_appears_once(llama_lm: Tiny, strategy):
    model, tokenizer = llama_lm
    bos = tokenizer.bos_token_id
    plain = "Human: Hello. Assistant:"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered.startswith("<s>") and tokenizer(rendered)["input_ids"][:2] == [bos, bos]  # the trap
    pairs = encode_pairs(tokenizer, [plain, rendered], [" Hi there.", "Hi there."])
    for pair in pairs:
        ids = pair.context + pair.response
        assert ids[0] == bos and ids.count(bos) == 1
    expected = tokenizer(rendered + "Hi there.", add_special_tokens=False)["input_ids"]
    assert list(pairs[1].context + pairs[1].response) == expected
    prompts, responses = [plain, rendered, rendered], [" Hi there.", "Hi there.", "Hello."]
    scores = score_sequences(model, tokenizer, prompts, responses, strategy=strategy)
    for j, pair in enumerate(encode_pairs(tokenizer, prompts, responses)):
        assert scores.logp[j] == pytest.approx(
            reference_token_logps(model, pair.context, pair.response).sum(), abs=TOL
        )


def test_appended_eos_is_scored_as_last_response_token():
    tokenizer = tiny_models.llama_tokenizer(add_eos=True)
    model = tiny_models.tiny_llama(tokenizer)
    (pair,) = encode_pairs(tokenizer, ["Hello"], [" world."])
    assert pair.context == (
        tokenizer.bos_token_id,
        *tokenizer("Hello", add_special_tokens=False)["input_ids"],
    )
    assert pair.response[-1] == tokenizer.eos_token_id
    assert pair.response[:-1] == tuple(tokenizer(" world.", add_special_tokens=False)["input_ids"])
    scores = score_sequences(model, tokenizer, ["Hello"], [" world."])
    assert scores.logp[0] == pytest.approx(
        reference_token_logps(model, pair.context, pair.response).sum(), abs=TOL
    )


# ----------------------------------------------------------------------------------------------- truncation


def test_truncation_cuts_prompt_left_and_response_right(llama_lm: Tiny):
    model, tokenizer = llama_lm
    bos = tokenizer.bos_token_id
    prompts = ["Human: Tell me a joke about a cat that sat on the mat. Assistant:", "Hello", "Hi"]
    responses = [" Why did the chicken cross the road?", " there.", " " + "one two three four five six " * 4]
    max_length = 24
    splits = [reference_split(tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
    assert len(splits[0][0]) + len(splits[0][1]) > max_length and len(splits[0][1]) < max_length - 2
    assert len(splits[1][0]) + len(splits[1][1]) <= max_length
    assert len(splits[2][1]) > max_length - 2
    # The rule, stated directly: long prompt -> keep BOS + the prompt's last tokens;
    # long response -> BOS + one prompt token + the response's first max_length - 2 tokens.
    (c0, r0), (c1, r1), (c2, r2) = splits
    expected = [
        ([bos] + c0[len(c0) - (max_length - len(r0) - 1) :], r0),
        (c1, r1),
        ([bos, c2[-1]], r2[: max_length - 2]),
    ]
    scores = score_sequences(
        model, tokenizer, prompts, responses, max_length=max_length, return_token_logps=True
    )
    pairs = encode_pairs(tokenizer, prompts, responses, max_length=max_length)
    assert [(list(p.context), list(p.response)) for p in pairs] == expected
    assert scores.truncated.tolist() == [True, False, True]
    for j, (context, response) in enumerate(expected):
        assert len(context) + len(response) <= max_length
        ref = reference_token_logps(model, context, response)
        np.testing.assert_allclose(scores.token_logps[j], ref, atol=TOL)
        assert scores.logp[j] == pytest.approx(ref.sum(), abs=TOL)


def test_truncation_without_bos_keeps_last_prompt_tokens(gpt2_lm: Tiny):
    model, tokenizer = gpt2_lm
    prompt, response = "The quick brown fox jumps over the lazy dog.", " It was a nice day."
    context, resp = reference_split(tokenizer, prompt, response)
    (pair,) = encode_pairs(tokenizer, [prompt], [response], max_length=len(resp) + 3)
    assert pair.truncated and list(pair.context) == context[-3:] and list(pair.response) == resp


def test_max_length_too_small(llama_lm: Tiny):
    with pytest.raises(ConfigError, match="max_length"):
        score_sequences(*llama_lm, ["Hello"], [" world"], max_length=1)
    with pytest.raises(ConfigError, match="no room for a response token"):
        score_sequences(*llama_lm, ["Hello"], [" world"], max_length=2)  # BOS + one prompt token fill it


# ------------------------------------------------------------------------------------------------ bad input


def test_empty_response_names_the_row(gpt2_lm: Tiny):
    with pytest.raises(RowError, match=r"row 2, column 'response': expected a non-empty response"):
        score_sequences(*gpt2_lm, ["a", "b", "c"], [" x", " y", ""])
    with pytest.raises(RowError, match=r"row 7, column 'response'"):
        score_sequences(*gpt2_lm, ["a"], [""], row_labels=[7])


def test_non_string_and_empty_context(gpt2_lm: Tiny):
    with pytest.raises(RowError, match=r"row 1, column 'prompt': expected a string, found NoneType"):
        score_sequences(*gpt2_lm, ["a", None], [" x", " y"])
    with pytest.raises(RowError, match=r"row 0, column 'prompt': nothing to condition"):
        score_sequences(*gpt2_lm, [""], ["Hello"])  # no BOS: the first token has no context
    with pytest.raises(ValueError, match="as many prompts as responses"):
        score_sequences(*gpt2_lm, ["a", "b"], [" x"])


def test_empty_prompt_with_bos_is_scored(llama_lm: Tiny):
    model, tokenizer = llama_lm
    scores = score_sequences(model, tokenizer, [""], ["Hello world."])
    context, response = reference_split(tokenizer, "", "Hello world.")
    assert context == [tokenizer.bos_token_id]
    assert scores.logp[0] == pytest.approx(reference_token_logps(model, context, response).sum(), abs=TOL)


# ------------------------------------------------------------------------------------- memory, dtype, modes


class _RecordingHead(torch.nn.Module):
    def __init__(self, head: torch.nn.Module) -> None:
        super().__init__()
        self.head = head
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.head(x)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_lm_head_sees_only_response_positions_in_chunks(request, name):
    model, tokenizer = request.getfixturevalue(f"{name}_lm")
    recorder = _RecordingHead(model.get_output_embeddings())
    model.set_output_embeddings(recorder)
    scores = score_sequences(
        model, tokenizer, PROMPTS, RESPONSES, batch_size=4, chunk_size=5, return_token_logps=True
    )
    # Only 2-D [rows, hidden] inputs of at most `chunk_size` rows: never [batch, length, vocab] logits.
    assert recorder.shapes and all(len(s) == 2 and s[0] <= 5 for s in recorder.shapes)
    assert sum(s[0] for s in recorder.shapes) == scores.n_tokens.sum()  # the prompt positions are not scored
    model.set_output_embeddings(recorder.head)
    ref = reference_scores(model, tokenizer, PROMPTS, RESPONSES)
    np.testing.assert_allclose(scores.logp, [r.sum() for r in ref], atol=TOL)


def test_bf16_sums_accumulate_in_fp32(llama_lm: Tiny):
    model, tokenizer = llama_lm
    model = model.to(torch.bfloat16)
    long = " " + "one two three four five six seven eight nine ten " * 12
    prompts, responses = PROMPTS[:4] + ["Hello"], RESPONSES[:4] + [long]
    scores = score_sequences(model, tokenizer, prompts, responses, return_token_logps=True)
    assert all(t.dtype == np.float32 for t in scores.token_logps)
    fp32_sums = np.array([t.sum(dtype=np.float32) for t in scores.token_logps])
    np.testing.assert_allclose(scores.logp, fp32_sums, rtol=1e-6)
    # The point: the same per-token values accumulated in bf16 lose whole nats on a long response.
    bf16_sum = torch.zeros((), dtype=torch.bfloat16)
    for v in scores.token_logps[-1]:
        bf16_sum = bf16_sum + torch.tensor(float(v), dtype=torch.bfloat16)
    assert scores.logp[-1] < -300 and abs(float(bf16_sum) - scores.logp[-1]) > 0.5
    # And the bf16 values are those of the bf16 model (loose: bf16 forwards of different shapes differ).
    ref = [
        reference_token_logps(model, *reference_split(tokenizer, p, r))
        for p, r in zip(prompts, responses, strict=True)
    ]
    for got, want in zip(scores.token_logps, ref, strict=True):
        np.testing.assert_allclose(got, want, atol=0.1)


def test_train_mode_model_is_scored_without_dropout_and_restored(gpt2_lm: Tiny):
    model, tokenizer = gpt2_lm
    ref = reference_scores(model.eval(), tokenizer, PROMPTS[:3], RESPONSES[:3])
    model.train()
    scores = score_sequences(model, tokenizer, PROMPTS[:3], RESPONSES[:3])
    assert model.training
    np.testing.assert_allclose(scores.logp, [r.sum() for r in ref], atol=TOL)


def test_sliding_window_model_falls_back_to_full_passes():
    tokenizer = tiny_models.llama_tokenizer()
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=6,
        initializer_range=0.2,
    )
    model = MistralForCausalLM(config).eval()
    with pytest.raises(ConfigError, match="sliding-window"):
        score_sequences(model, tokenizer, PROMPTS, RESPONSES, share_prompts=True)
    with pytest.raises(ConfigError, match="sliding-window"):
        score_sequences(model, tokenizer, PROMPTS, RESPONSES, strategy="packed")
    scores = score_sequences(model, tokenizer, PROMPTS, RESPONSES, batch_size=4)
    np.testing.assert_allclose(
        scores.logp, [r.sum() for r in reference_scores(model, tokenizer, PROMPTS, RESPONSES)], atol=TOL
    )


def test_models_loaded_from_disk_score_the_same(gpt2_lm_dir, gpt2_lm_session: Tiny):
    model = AutoModelForCausalLM.from_pretrained(gpt2_lm_dir)
    tokenizer = AutoTokenizer.from_pretrained(gpt2_lm_dir)
    loaded = score_sequences(model, tokenizer, PROMPTS, RESPONSES)
    built = score_sequences(*gpt2_lm_session, PROMPTS, RESPONSES)
    np.testing.assert_allclose(loaded.logp, built.logp, atol=1e-6)


def test_progress_bar_and_its_switch(gpt2_lm: Tiny, capsys, monkeypatch):
    score_sequences(*gpt2_lm, PROMPTS[:2], RESPONSES[:2], show_progress=True)
    assert "Scoring sequences" in capsys.readouterr().err
    monkeypatch.setenv(DISABLE_PROGRESS_ENV, "1")
    score_sequences(*gpt2_lm, PROMPTS[:2], RESPONSES[:2], show_progress=True)
    assert "Scoring sequences" not in capsys.readouterr().err
    monkeypatch.delenv(DISABLE_PROGRESS_ENV)
    monkeypatch.setattr(logging.getLogger("real_hub"), "level", logging.WARNING)
    score_sequences(*gpt2_lm, PROMPTS[:2], RESPONSES[:2], show_progress=True)
    assert "Scoring sequences" not in capsys.readouterr().err


def test_no_pairs():
    tokenizer = tiny_models.gpt2_tokenizer()
    scores = score_sequences(tiny_models.tiny_gpt2(tokenizer), tokenizer, [], [], return_token_logps=True)
    assert len(scores) == 0 and scores.token_logps == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_cpu_reference(llama_lm: Tiny, dtype):
    model, tokenizer = llama_lm
    ref = reference_scores(model, tokenizer, PROMPTS, RESPONSES)
    scores = score_sequences(model.to("cuda", dtype), tokenizer, PROMPTS, RESPONSES, batch_size=3)
    tol = 1e-3 if dtype == torch.float32 else 0.1 * max(len(r) for r in ref)
    np.testing.assert_allclose(scores.logp, [r.sum() for r in ref], atol=tol)
