"""GenerateResponses against independent references (HF greedy generate, a no-cache sampling loop)."""

from __future__ import annotations

import json
import pickle
import sys
import types

import pytest
import tiny_models
import torch
from datasets import Dataset
from datasets.fingerprint import Hasher

from real_hub import GenerateResponses, generation_report
from real_hub.errors import ColumnError, ConfigError, RowError
from real_hub.generate import encode_prompt, end_of_turn_ids, row_seed
from real_hub.models import clear_model_cache

PROMPTS = [
    "Hello there",
    [{"role": "user", "content": "What is the capital of France?"}],
    "Tell me a joke please, I am bored today and want to laugh",
    [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "How do I bake bread?"},
        {"role": "assistant", "content": "Mix flour and water."},
        {"role": "user", "content": "And then?"},
    ],
    "x",
    "The quick brown fox",
    "Numbers: one, two, three",
    "Please be kind and respectful to everyone you meet.",
    "Why?",
]


def _rows(prompts):
    # a column that mixes strings and message lists: one JSON string per row, decoded by the map function
    return Dataset.from_dict({"prompt_json": [json.dumps(p) for p in prompts]})


def _decode(batch):
    return {"prompt": [json.loads(p) for p in batch["prompt_json"]]}


@pytest.fixture(autouse=True)
def _fresh_models():
    # One torch thread: the tiny models' matmuls are far faster without a thread pool on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    clear_model_cache()
    yield
    clear_model_cache()
    torch.set_num_threads(threads)


def _generate(path, prompts, **kwargs):
    """Call the processor on a plain batch (mixed text / message prompts)."""
    return GenerateResponses(str(path), **kwargs)({"prompt": prompts})


# ------------------------------------------------------------------------------------ independent references


def reference_sample(model, tokenizer, prompt, *, seed, n, max_new_tokens, temperature, top_p, stop_ids):
    """One prompt, one sample at a time, no cache, no padding: a full forward per token, fp64 numpy CDF.

    Draws follow the documented rule: the row's generator (seeded with ``row_seed``) gives ``n`` uniforms
    per step, sample ``j`` takes the ``j``-th; the token is the first whose cumulative probability reaches
    ``u * total`` over the temperature-scaled distribution cut to the top-p nucleus.
    """
    ids = encode_prompt(tokenizer, prompt, chat_template=True)
    gen = torch.Generator().manual_seed(row_seed(seed, prompt))
    uniforms = [torch.rand(n, generator=gen) for _ in range(max_new_tokens)]
    out = []
    for j in range(n):
        seq, new, reason = list(ids), [], "length"
        for step in range(max_new_tokens):
            with torch.no_grad():
                logits = model(torch.tensor([seq])).logits[0, -1].double() / temperature
            probs = torch.softmax(logits, -1)
            order = torch.argsort(probs, descending=True, stable=True)
            p = probs[order]
            keep = (torch.cumsum(p, 0) - p) < top_p
            p = torch.where(keep, p, torch.zeros_like(p))
            cdf = torch.cumsum(p, 0)
            u = float(uniforms[step][j])
            k = int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])], dtype=cdf.dtype)))
            token = int(order[min(k, len(order) - 1)])
            if token in stop_ids:
                reason = "stop"
                break
            new.append(token)
            seq.append(token)
        out.append((tokenizer.decode(new, skip_special_tokens=True).strip(), reason))
    return out


def test_sampling_matches_a_plain_no_cache_loop(llama_lm_dir, llama_lm):
    model, tok = llama_lm
    kwargs = {"n": 3, "max_new_tokens": 10, "temperature": 0.9, "top_p": 0.9, "seed": 7}
    out = _generate(llama_lm_dir, PROMPTS[:5], batch_size=4, **kwargs)
    stop_ids = end_of_turn_ids(tok, model)
    assert stop_ids == [tok.eos_token_id]  # the template's end of turn is </s>
    reasons = set()
    for i, prompt in enumerate(PROMPTS[:5]):
        ref = reference_sample(model, tok, prompt, stop_ids=stop_ids, **kwargs)
        assert out["responses"][i] == [text for text, _ in ref], f"row {i}"
        assert out["finish_reasons"][i] == [reason for _, reason in ref], f"row {i}"
        reasons.update(out["finish_reasons"][i])
    assert reasons == {"stop", "length"}  # both endings were exercised


@pytest.mark.parametrize("lm", ["gpt2", "llama"])
def test_greedy_equals_transformers_generate(lm, request):
    model, tok = request.getfixturevalue(f"{lm}_lm")
    path = request.getfixturevalue(f"{lm}_lm_dir")
    prompts = PROMPTS[:4] + ["The cat sat on the mat"]
    out = _generate(path, prompts, n=2, max_new_tokens=8, temperature=0.0, batch_size=3)
    stop_ids = end_of_turn_ids(tok, model)
    for i, prompt in enumerate(prompts):
        ids = encode_prompt(tok, prompt, chat_template=True)
        with torch.no_grad():
            ref = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                do_sample=False,
                max_new_tokens=8,
                eos_token_id=stop_ids,
                pad_token_id=stop_ids[0],
            )[0, len(ids) :].tolist()
        new = [t for t in ref if t not in stop_ids]
        text = tok.decode(new, skip_special_tokens=True).strip()
        assert out["responses"][i] == [text, text]
        stopped = len(new) < len(ref)
        assert out["finish_reasons"][i] == ["stop" if stopped else "length"] * 2
        assert out["generated_tokens"][i] == [len(ref)] * 2


# ------------------------------------------------------------------------------------ reproducibility


def test_reproducible_across_batch_size_and_num_proc(llama_lm_dir):
    ds = _rows(PROMPTS).map(_decode, batched=True)
    results = []
    for batch_size, num_proc in [(1, None), (3, None), (8, None), (3, 2)]:
        g = GenerateResponses(str(llama_lm_dir), n=3, max_new_tokens=12, batch_size=batch_size, seed=3)
        out = ds.map(g, batched=True, batch_size=4, num_proc=num_proc, load_from_cache_file=False)
        results.append(out["responses"])
    assert all(r == results[0] for r in results[1:])
    # a row's samples do not depend on its neighbours: generate the rows one by one
    alone = [_generate(llama_lm_dir, [p], n=3, max_new_tokens=12, seed=3)["responses"][0] for p in PROMPTS]
    assert alone == results[0]
    # and they change with the seed
    other = _generate(llama_lm_dir, PROMPTS, n=3, max_new_tokens=12, seed=4)["responses"]
    assert other != results[0]


def test_n_max_new_tokens_and_columns(gpt2_lm_dir):
    ds = Dataset.from_dict({"prompt": ["Hello there", "The quick brown fox", "Why?"], "id": [1, 2, 3]})
    g = GenerateResponses(str(gpt2_lm_dir), n=5, max_new_tokens=6, temperature=1.0, top_p=1.0)
    out = ds.map(g, batched=True, features=g.output_features(ds.features))
    assert out.column_names == [
        "prompt", "id", "responses", "generated_tokens", "finish_reasons", "generator",
        "generator_revision", "generation_params",
    ]  # fmt: skip
    for row in out:
        assert len(row["responses"]) == len(row["generated_tokens"]) == len(row["finish_reasons"]) == 5
        for text, tokens, reason in zip(row["responses"], row["generated_tokens"], row["finish_reasons"]):
            assert 1 <= tokens <= 6
            assert (reason == "length") == (tokens == 6 and reason != "stop")
            assert row["prompt"] not in text
        assert row["generator"] == str(gpt2_lm_dir)
        assert json.loads(row["generation_params"]) == {
            "backend": "transformers", "chat_template": True, "max_new_tokens": 6, "n": 5, "seed": 0,
            "temperature": 1.0, "top_p": 1.0,
        }  # fmt: skip


def test_stop_token_ends_a_sample_and_empty_rows_are_counted(tmp_path):
    tok = tiny_models.gpt2_tokenizer()
    model = tiny_models.tiny_gpt2(tok)
    assert tok.eos_token_id == 0
    with torch.no_grad():  # all logits 0: greedy picks the first id, <|endoftext|>, at once
        model.lm_head.weight.zero_()
    path = tiny_models.save_tiny(model, tok, tmp_path / "eos-gpt2")
    out = _generate(path, ["Hello there", "Why?"], n=3, max_new_tokens=8, temperature=0.0)
    assert out["responses"] == [["", "", ""], ["", "", ""]]
    assert out["finish_reasons"] == [["stop"] * 3] * 2
    assert out["generated_tokens"] == [[1, 1, 1]] * 2
    report = generation_report(Dataset.from_dict(out))
    assert (report.rows, report.samples, report.empty_samples, report.rows_all_empty) == (2, 6, 6, 2)
    assert report.rows_all_identical == 0 and report.stopped == 6 and report.new_tokens == 6


def test_greedy_rows_are_counted_as_identical(llama_lm_dir):
    g = GenerateResponses(str(llama_lm_dir), n=3, max_new_tokens=5, temperature=0.0)
    ds = Dataset.from_dict({"prompt": ["Hello there", "The quick brown fox"]}).map(g, batched=True)
    report = generation_report(ds)
    rows = ds["responses"]
    assert all(len(set(r)) == 1 for r in rows)  # greedy: the n samples agree
    empty = sum(r[0] == "" for r in rows)
    assert (report.rows_all_empty, report.rows_all_identical) == (empty, 2 - empty)
    assert report.rows == 2 and report.samples == 6
    assert g.stats == report  # in-process map: the processor itself counted


# ------------------------------------------------------------------------------------ rendering


def test_chat_and_plain_prompts_are_encoded_as_documented(llama_lm):
    _, tok = llama_lm
    messages = [{"role": "user", "content": "Hi"}]
    chat = encode_prompt(tok, "Hi", chat_template=True)
    assert chat == tok(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"]  # fmt: skip
    assert chat.count(tok.bos_token_id) == 1 and chat[0] == tok.bos_token_id
    assert encode_prompt(tok, messages, chat_template=True) == chat
    assert encode_prompt(tok, "Hi", chat_template=False) == tok("Hi")["input_ids"]
    transcript = tok("\n\nHuman: Hi\n\nAssistant:")["input_ids"]
    assert encode_prompt(tok, messages, chat_template=False) == transcript


def test_chat_template_false_continues_plain_text(llama_lm_dir):
    chat = _generate(llama_lm_dir, ["Hello there"], n=2, max_new_tokens=6, temperature=0.0)
    plain = _generate(
        llama_lm_dir, ["Hello there"], n=2, max_new_tokens=6, temperature=0.0, chat_template=False
    )
    assert chat["responses"] != plain["responses"]
    assert json.loads(plain["generation_params"][0])["chat_template"] is False


# ------------------------------------------------------------------------------------ errors


def test_prompt_longer_than_the_context_names_the_row(llama_lm_dir):
    long = " ".join(["hello"] * 300)  # the tiny Llama has 256 positions
    ds = Dataset.from_dict({"prompt": ["Hi", "Why?", long]})
    g = GenerateResponses(str(llama_lm_dir), n=2, max_new_tokens=4)
    with pytest.raises(RowError, match=r"row 2, column 'prompt': the prompt has \d+ tokens.*context of 256"):
        ds.map(g, batched=True, with_indices=True)
    fits = " ".join(["hello"] * 100)
    with pytest.raises(RowError, match="max_new_tokens=200"):
        GenerateResponses(str(llama_lm_dir), max_new_tokens=200)({"prompt": [fits]})


def test_bad_rows_and_options():
    g = GenerateResponses("some/model")
    with pytest.raises(ColumnError, match="'prompt'"):
        g({"question": ["hi"]})
    with pytest.raises(RowError, match="row 1 of this batch.*found None"):
        g({"prompt": ["hi", None]})
    with pytest.raises(RowError, match=r"column 'prompt\[0\]'"):
        g({"prompt": [[{"role": "user"}]]})
    for bad in ({"n": 0}, {"max_new_tokens": -1}, {"temperature": -0.1}, {"top_p": 0}, {"backend": "tgi"}):
        with pytest.raises(ConfigError):
            GenerateResponses("some/model", **bad)


def test_vllm_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ConfigError, match=r"pip install 'real-hub\[vllm\]'"):
        GenerateResponses("some/model", backend="vllm")


def test_vllm_backend_dry_run(monkeypatch, llama_lm_dir, llama_lm):
    """The vLLM path with a stand-in ``vllm`` module: what it is asked, and how its outputs become columns."""
    _, tok = llama_lm
    calls = {}

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LLM:
        def __init__(self, **kwargs):
            calls["init"] = kwargs
            self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=256))

        def get_tokenizer(self):
            return tok

        def generate(self, prompts, params, use_tqdm=True):
            calls["generate"] = (prompts, [p.kwargs for p in params])
            eos = tok.eos_token_id
            hello = tok("Hello", add_special_tokens=False)["input_ids"]
            outs = [
                types.SimpleNamespace(token_ids=[*hello, eos], finish_reason="stop"),
                types.SimpleNamespace(token_ids=hello * 3, finish_reason="length"),
            ]
            return [types.SimpleNamespace(outputs=outs) for _ in prompts]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    g = GenerateResponses(str(llama_lm_dir), backend="vllm", n=2, max_new_tokens=3, seed=5)
    out = g({"prompt": ["Hi", [{"role": "user", "content": "Why?"}]]})
    assert calls["init"]["model"] == str(llama_lm_dir) and calls["init"]["seed"] == 5
    prompts, params = calls["generate"]
    assert prompts[0]["prompt_token_ids"] == encode_prompt(tok, "Hi", chat_template=True)
    why = [{"role": "user", "content": "Why?"}]
    assert [p["seed"] for p in params] == [row_seed(5, "Hi") % 2**31, row_seed(5, why) % 2**31]
    assert params[0]["n"] == 2 and params[0]["max_tokens"] == 3
    assert params[0]["stop_token_ids"] == [tok.eos_token_id]
    assert out["responses"][0] == ["Hello", "HelloHelloHello"]
    assert out["finish_reasons"][0] == ["stop", "length"]
    assert out["generated_tokens"][0] == [len(tok("Hello", add_special_tokens=False)["input_ids"]) + 1, 3 * 1]


# ------------------------------------------------------------------------------------ processor contract


def test_pickled_state_is_configuration(llama_lm_dir):
    a = GenerateResponses(str(llama_lm_dir), n=2, max_new_tokens=3)
    b = GenerateResponses(str(llama_lm_dir), n=2, max_new_tokens=3)
    before = Hasher.hash(a)
    a({"prompt": ["Hi"]})  # loads the model
    assert a._loaded
    assert Hasher.hash(a) == Hasher.hash(b) == before
    assert len(pickle.dumps(a)) < 2000
    assert Hasher.hash(GenerateResponses(str(llama_lm_dir), n=3, max_new_tokens=3)) != before
    assert Hasher.hash(GenerateResponses(str(llama_lm_dir), n=2, max_new_tokens=3, seed=1)) != before


def test_streaming_gives_the_same_responses_as_map(llama_lm_dir):
    ds = Dataset.from_dict({"prompt": ["Hello there", "Why?", "The quick brown fox"]})
    g = GenerateResponses(str(llama_lm_dir), n=2, max_new_tokens=6)
    mapped = ds.map(g, batched=True)["responses"]
    streamed = [row["responses"] for row in ds.to_iterable_dataset().map(g, batched=True, batch_size=2)]
    assert streamed == mapped
