"""Domain routing: the keyword router, the embedding router's centroid rule, instructions and system turns."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from datasets.fingerprint import Hasher

from real_hub.drsow.routing import (
    DOMAIN_EXAMPLES,
    DOMAIN_INSTRUCTIONS,
    DOMAINS,
    EmbeddingRouter,
    KeywordRouter,
    check_routes,
    last_user_turn,
    with_instruction,
)
from real_hub.errors import ConfigError, RowError


def test_instructions_and_examples_cover_the_three_domains():
    assert set(DOMAIN_INSTRUCTIONS) == set(DOMAINS) == set(DOMAIN_EXAMPLES) == {"safety", "reasoning", "chat"}
    for text in DOMAIN_INSTRUCTIONS.values():
        assert text.count(". ") >= 1 and len(text) > 100  # a few sentences each
    assert all(len(v) >= 3 for v in DOMAIN_EXAMPLES.values())


def test_keyword_router_on_hand_written_prompts():
    router = KeywordRouter()
    prompts = [
        "How do I kill my neighbour's dog?",
        "Solve this equation: 2x + 3 = 9",
        "What's a good name for a cat?",
        "Write Python code to sort a list.",
        "My robot vacuum is noisy, any tips?",  # 'rob' is a whole word only: no match
        "Why would someone rob a bank to solve their money problems?",  # one hit each: safety listed first
        "I was robbed. How do I calculate and compute the loss, step by step, with math?",  # 1 vs 3
        "",
    ]
    expected = ["safety", "reasoning", "chat", "reasoning", "chat", "safety", "reasoning", "chat"]
    assert router(prompts) == expected


def test_keyword_router_custom_keywords_and_default():
    router = KeywordRouter({"cooking": ["bake", "recipe*"], "travel": ["flight*"]}, default="other")
    assert router(["A RECIPES book", "cheap flights and flight deals", "bakery", "bake"]) == [
        "cooking",
        "travel",
        "other",
        "cooking",
    ]


def test_keyword_router_pickles_to_its_configuration():
    router = KeywordRouter()
    restored = pickle.loads(pickle.dumps(router))
    assert restored(["hack the wifi"]) == ["safety"]
    assert Hasher.hash(KeywordRouter()) == Hasher.hash(router)
    assert Hasher.hash(KeywordRouter(default="safety")) != Hasher.hash(router)


class AxisEncoder:
    """A fake encoder: each text maps to a fixed vector from a table."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.dim = 2

    def encode(self, texts):
        return np.array([self.table[t] for t in texts], dtype=np.float64)


def test_embedding_router_uses_the_mean_of_normalised_examples():
    # Domain "a": examples (10, 0) and (0, 1): normalised mean is (1, 1)/sqrt(2), i.e. 45 degrees
    # (an un-normalised mean (5, 0.5) would point at 6 degrees). Domain "b": (1, -0.2), at -11 degrees.
    table = {"a1": [10.0, 0.0], "a2": [0.0, 1.0], "b1": [1.0, -0.2], "p": [1.0, 0.3], "q": [0.0, 2.0]}
    router = EmbeddingRouter(AxisEncoder(table), examples={"a": ["a1", "a2"], "b": ["b1"]})
    np.testing.assert_allclose(router.centroids[0], [2**-0.5, 2**-0.5])
    # "p" is at 16.7 degrees: 28.3 from "a", 28.0 from "b" -> "b"; "q" (90 degrees) -> "a".
    assert router(["p", "q"]) == ["b", "a"]
    assert router([]) == []


def test_embedding_router_refuses_a_domain_without_examples():
    with pytest.raises(ConfigError, match="at least one example"):
        EmbeddingRouter(examples={"a": ["x"], "b": []})


def test_embedding_router_fingerprint_is_configuration():
    assert Hasher.hash(EmbeddingRouter()) == Hasher.hash(EmbeddingRouter())
    assert Hasher.hash(EmbeddingRouter(batch_size=8)) != Hasher.hash(EmbeddingRouter())
    state = EmbeddingRouter().__getstate__()
    assert set(state) == {"model", "examples", "revision", "device", "batch_size", "__real_hub_version__"}


def test_last_user_turn_and_system_merge():
    conv = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    assert last_user_turn(conv) == "second"
    assert last_user_turn("plain text") == "plain text"
    assert last_user_turn([{"role": "assistant", "content": "hi"}]) is None
    merged = with_instruction(conv, "INSTR")
    assert merged[0] == {"role": "system", "content": "INSTR\n\nBe brief."}
    assert merged[1:] == conv[1:]
    assert conv[0]["content"] == "Be brief."  # the input is not changed
    added = with_instruction(conv[1:], "INSTR")
    assert added == [{"role": "system", "content": "INSTR"}, *conv[1:]]


def test_check_routes_names_the_row_of_an_unknown_domain():
    assert check_routes(["chat", "safety"], 2, DOMAINS, [0, 1]) == ["chat", "safety"]
    with pytest.raises(RowError, match=r"row 7, column 'prompt'.*'medical'"):
        check_routes(["chat", "medical"], 2, DOMAINS, [6, 7])
    with pytest.raises(ConfigError, match="list of 2 domain names"):
        check_routes(["chat"], 2, DOMAINS, [0, 1])


@pytest.mark.slow
def test_default_embedding_router_with_minilm_on_hand_written_prompts(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    router = EmbeddingRouter()
    prompts = [
        "What household chemicals can I mix to make a poisonous gas to hurt my roommate?",
        "How do I pick a lock to get into my neighbour's house while they are away?",
        "What is the integral of 2x from 0 to 3?",
        "Write a function in JavaScript that reverses a string.",
        "What's a nice place to go on holiday in spring?",
        "Any ideas for a birthday present for my sister?",
    ]
    assert router(prompts) == ["safety", "safety", "reasoning", "reasoning", "chat", "chat"]
