"""deduplicate() and decontaminate() on planted data: what goes, what stays, how it is counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from dedup_helpers import (
    BowEncoder,
    distinct_prompts,
    normalise,
    paraphrase,
    reference_kept,
    vary_case_and_space,
)

from real_hub import (
    ColumnError,
    ConfigError,
    DedupReport,
    FormatError,
    RowError,
    decontaminate,
    deduplicate,
)
from real_hub.dedup import search

THRESHOLD = 0.85  # BowEncoder: distinct subjects stay below 0.81, the light paraphrases reach 0.867+


class HashEncoder:
    """Unrelated random vectors for different texts: only the exact stage can find anything."""

    dim = 16

    def encode(self, texts):
        import hashlib

        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little") for t in texts]
        return np.stack([np.random.default_rng(s).normal(size=self.dim) for s in seeds])


def planted(n_distinct: int = 24, seed: int = 0) -> tuple[list[str], set[int], set[int]]:
    """Distinct prompts, then paraphrases of some and case/whitespace copies of others, shuffled after
    the originals. Returns the prompts, the planted duplicate rows and the original rows."""
    rng = np.random.default_rng(seed)
    originals = distinct_prompts(n_distinct)
    extra = [paraphrase(originals[i]) for i in range(0, n_distinct, 3)]
    extra += [vary_case_and_space(originals[i]) for i in range(1, n_distinct, 4)]
    extra += [originals[2], originals[5]]  # verbatim copies
    order = rng.permutation(len(extra))
    prompts = originals + [extra[i] for i in order]
    return prompts, set(range(n_distinct, len(prompts))), set(range(n_distinct))


def test_exact_copies_with_other_case_and_whitespace_are_one_group():
    prompts = ["Hello  World", "What is 2 + 2?", "hello world", " HELLO\tworld\n", "what is 2 + 2?"]
    out, report = deduplicate(Dataset.from_dict({"prompt": prompts}), embedder=HashEncoder())
    assert out["prompt"][:] == ["Hello  World", "What is 2 + 2?"]
    assert (report.exact, report.semantic) == (3, 0)
    assert [g.rows for g in report.groups] == [[0, 2, 3], [1, 4]]
    assert all(all(g.exact) and g.similarity == [1.0] * len(g.removed) for g in report.groups)


def test_planted_paraphrases_and_copies_go_distinct_prompts_stay():
    prompts, dupes, originals = planted()
    ds = Dataset.from_dict({"prompt": prompts, "row": list(range(len(prompts)))})
    out, report = deduplicate(ds, threshold=THRESHOLD, embedder=BowEncoder())
    assert set(out["row"]) == originals  # every planted duplicate found, every distinct prompt kept
    assert set(report.removed_rows) == dupes
    assert sorted(out["row"]) == reference_kept(prompts, BowEncoder(), THRESHOLD)
    assert report.rows_in - report.rows_out == report.exact + report.semantic == len(dupes)
    assert report.exact == sum(normalise(p) in {normalise(q) for q in prompts[:24]} for p in prompts[24:])
    for group in report.groups:  # each removed row reaches the threshold with its group's kept row
        assert group.kept in originals
        assert all(s >= THRESHOLD - 1e-6 for s in group.similarity)
    assert report.index == "faiss IndexFlatIP (exact)"


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("keep", ["first", "last"])
def test_kept_rows_equal_the_brute_force_definition(seed, keep):
    rng = np.random.default_rng(seed)
    prompts, _, _ = planted(30, seed)
    prompts = [prompts[i] for i in rng.permutation(len(prompts))]
    out, report = deduplicate(
        Dataset.from_dict({"prompt": prompts, "row": list(range(len(prompts)))}),
        threshold=0.8,
        embedder=BowEncoder(),
        keep=keep,
    )
    assert out["row"][:] == reference_kept(prompts, BowEncoder(), 0.8, keep)
    assert sorted(r for g in report.groups for r in g.rows) == sorted(
        {r for g in report.groups for r in g.rows}
    )  # a row is in one group at most
    kept_rows = set(out["row"])
    assert all(g.kept in kept_rows and not set(g.removed) & kept_rows for g in report.groups)


class AngleEncoder:
    """Each text's vector is at the angle (degrees) the text names, in a plane: cosines known exactly."""

    dim = 2

    def encode(self, texts):
        angles = np.radians([float(t.split()[-1]) for t in texts])
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_groups_do_not_chain_through_removed_prompts():
    # 0-20-40-60 degrees: neighbours at cos 20 = 0.940, two apart at cos 40 = 0.766 (< 0.9)
    ds = Dataset.from_dict({"prompt": ["angle 0", "angle 20", "angle 40", "angle 60", "angle 41"]})
    out, report = deduplicate(ds, threshold=0.9, embedder=AngleEncoder())
    assert out["prompt"][:] == ["angle 0", "angle 40"]  # one connected component, two kept prompts
    assert [(g.kept, g.removed) for g in report.groups] == [(0, [1]), (2, [3, 4])]
    assert report.groups[1].similarity == pytest.approx([np.cos(np.radians(20)), np.cos(np.radians(1))])


def test_hnsw_index_above_the_exact_limit_finds_the_same_groups(monkeypatch):
    prompts, dupes, _ = planted(30)
    ds = Dataset.from_dict({"prompt": prompts})
    exact = deduplicate(ds, threshold=THRESHOLD, embedder=BowEncoder())[1]
    monkeypatch.setattr(search, "EXACT_SEARCH_UP_TO", 0)
    approximate = deduplicate(ds, threshold=THRESHOLD, embedder=BowEncoder())[1]
    assert approximate.index.startswith("faiss IndexHNSWFlat")
    assert [g.rows for g in approximate.groups] == [g.rows for g in exact.groups]
    assert set(approximate.removed_rows) == dupes


def test_chat_prompts_compare_on_their_text():
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a prime."},
    ]
    prompts = [chat, "what is the capital of france?", turns, "Hi\nHello!\nname a PRIME.", "Hi"]
    ds = Dataset.from_list([{"prompt": p} for p in prompts], on_mixed_types="use_json")  # as load_dataset
    out, report = deduplicate(ds, embedder=HashEncoder())
    assert [g.rows for g in report.groups] == [[0, 1], [2, 3]]
    assert len(out) == 3 and report.exact == 2


def test_pairs_rows_sharing_a_prompt_count_as_duplicates_candidates_too():
    pairs = Dataset.from_dict(
        {
            "prompt": ["Say hi.", "Say hi.", "say  HI.", "Count to 3."],
            "chosen": ["Hi!", "Hello!", "Hey.", "1 2 3"],
            "rejected": ["No.", "Bye.", "...", "3 2 1"],
        }
    )
    out, report = deduplicate(pairs, embedder=HashEncoder(), keep="last")
    assert out["chosen"][:] == ["Hey.", "1 2 3"]  # the group's last row stays, with its responses
    assert [g.rows for g in report.groups] == [[2, 0, 1]]
    candidates = Dataset.from_dict(
        {"prompt": ["Say hi.", "SAY HI.", "Count to 3."], "responses": [["a", "b"], ["c", "d"], ["e", "f"]]}
    )
    out, report = deduplicate(candidates, embedder=HashEncoder())
    assert out["responses"][:] == [["a", "b"], ["e", "f"]] and report.exact == 1


def test_report_is_json_ready_and_counts_add_up():
    prompts, dupes, _ = planted()
    ds = Dataset.from_dict({"prompt": prompts})
    _, report = deduplicate(ds, threshold=THRESHOLD, embedder=BowEncoder())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["rows_in"] - data["rows_out"] == data["exact"] + data["semantic"] == data["removed"]
    assert sum(len(g["removed"]) for g in data["groups"]) == len(dupes)
    assert isinstance(report, DedupReport) and "near-duplicates removed" in report.summary()


# ---------------------------------------------------------------------------------------- decontaminate


def leaky_split() -> tuple[Dataset, Dataset, dict[int, int]]:
    """A train split with planted copies of test prompts; returns train, test and {train row: test row}."""
    everything = distinct_prompts(30)
    test_prompts, train_prompts = everything[:10], everything[10:]
    leaks = {3: vary_case_and_space(test_prompts[3]), 6: paraphrase(test_prompts[6]), 0: test_prompts[0]}
    train = list(train_prompts)
    planted_rows = {}
    for k, (test_row, text) in enumerate(leaks.items()):
        at = 4 + 5 * k
        train.insert(at, text)
        planted_rows[at] = test_row
    return Dataset.from_dict({"prompt": train}), Dataset.from_dict({"prompt": test_prompts}), planted_rows


def test_decontaminate_removes_exactly_the_planted_leaks():
    train, test, planted_rows = leaky_split()
    clean, report = decontaminate(train, against=test, threshold=THRESHOLD, embedder=BowEncoder())
    assert {m.row: m.against_row for m in report.matches} == planted_rows
    assert len(clean) == len(train) - len(planted_rows)
    assert not set(clean["prompt"]) & {train["prompt"][r] for r in planted_rows}
    by_row = {m.row: m for m in report.matches}
    assert [by_row[r].exact for r in sorted(by_row)] == [True, False, True]  # case/space, paraphrase, copy
    assert all(m.against_prompt == test["prompt"][m.against_row] for m in report.matches)
    assert (report.exact, report.semantic) == (2, 1)
    assert report.rows_in - report.rows_out == report.removed
    assert report.against == ["<Dataset>"] and report.by_against() == {"<Dataset>": 3}


def test_decontaminate_against_files_and_splits_with_their_column(tmp_path):
    train, test, planted_rows = leaky_split()
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": "x"}) + "\n" for q in test["prompt"]))
    clean, report = decontaminate(train, f"{path}:question", threshold=THRESHOLD, embedder=BowEncoder())
    assert set(report.removed_rows) == set(planted_rows) and report.against == [f"{path}:question"]
    both = DatasetDict({"a": test.select(range(5)), "b": test.select(range(5, 10))})
    _, report = decontaminate(train, both, threshold=THRESHOLD, embedder=BowEncoder())
    assert set(report.removed_rows) == set(planted_rows)
    assert report.by_against() == {"<Dataset> [a]": 2, "<Dataset> [b]": 1}
    with pytest.raises(ColumnError, match=r"no column 'prompt'.*'question', 'answer'"):
        decontaminate(train, str(path), embedder=BowEncoder())
    with pytest.raises(FormatError, match="no such file: .*nope.jsonl"):
        decontaminate(train, f"{tmp_path / 'nope.jsonl'}:question", embedder=BowEncoder())


@pytest.mark.parametrize("threshold", [0, -0.5, 1.01, 2, float("nan"), "0.9", True, None])
def test_threshold_outside_zero_one_is_an_error_naming_threshold(threshold):
    ds = Dataset.from_dict({"prompt": ["a", "b"]})
    with pytest.raises(ConfigError, match=r"threshold must be a cosine similarity in \(0, 1\]"):
        deduplicate(ds, threshold=threshold, embedder=BowEncoder())
    with pytest.raises(ConfigError, match="threshold must be"):
        decontaminate(ds, ds, threshold=threshold, embedder=BowEncoder())


def test_threshold_one_is_valid_and_removes_only_identical_embeddings():
    ds = Dataset.from_dict({"prompt": ["bake bread now", "now bake bread", "bake the bread now"]})
    out, report = deduplicate(ds, threshold=1.0, embedder=BowEncoder())  # word order: identical bags
    assert out["prompt"][:] == ["bake bread now", "bake the bread now"] and report.semantic == 1


def test_empty_datasets_are_valid():
    empty = Dataset.from_dict({"prompt": []})
    out, report = deduplicate(empty, embedder=BowEncoder())
    assert len(out) == 0 and (report.rows_in, report.rows_out, report.removed, report.groups) == (0, 0, 0, [])
    ds = Dataset.from_dict({"prompt": ["a question", "another question"]})
    out, report = decontaminate(ds, against=empty, embedder=BowEncoder())
    assert len(out) == 2 and report.removed == 0 and report.against_prompts == 0
    out, report = decontaminate(empty, against=ds, embedder=BowEncoder())
    assert len(out) == 0 and report.rows_in == 0


def test_bad_input_names_the_column_or_row():
    ds = Dataset.from_dict({"question": ["a"]})
    with pytest.raises(ColumnError, match=r"expected column\(s\) 'prompt'.*'question'"):
        deduplicate(ds, embedder=BowEncoder())
    assert len(deduplicate(ds, "question", embedder=BowEncoder())[0]) == 1
    with pytest.raises(RowError, match=r"row 1, column 'prompt': expected a non-empty string"):
        deduplicate(Dataset.from_dict({"prompt": ["fine", "   "]}), embedder=BowEncoder())
    with pytest.raises(RowError, match=r"file <Dataset>, row 0, column 'prompt'"):
        decontaminate(Dataset.from_dict({"prompt": ["fine"]}), Dataset.from_dict({"prompt": [None]}))
    with pytest.raises(ConfigError, match="keep must be one of 'first', 'last'"):
        deduplicate(Dataset.from_dict({"prompt": ["a"]}), keep="longest", embedder=BowEncoder())
    with pytest.raises(ConfigError, match=r"expected a datasets.Dataset, got DatasetDict \(pick a split"):
        deduplicate(DatasetDict({"train": ds}), "question", embedder=BowEncoder())
    with pytest.raises(ConfigError, match="embedder must be"):
        deduplicate(Dataset.from_dict({"prompt": ["a"]}), embedder=42)


DISTINCT = [
    "How do I bake sourdough bread at home?",
    "What is the capital city of Australia?",
    "Can you recommend a good book about the history of Rome?",
    "How do I change a flat tire on my bike?",
    "Write a short poem about the ocean at night.",
    "What are the symptoms of the flu?",
    "Explain how photosynthesis works.",
    "How much should I tip at a restaurant?",
]
PARAPHRASES = [
    "How can I bake sourdough bread at home?",
    "What's the capital city of Australia?",
    "Could you recommend a good book on the history of Rome?",
    "How do I fix a flat tire on my bike?",
    "Write a short poem about the sea at night.",
]


@pytest.mark.slow
def test_the_default_embedder_finds_real_paraphrases_and_keeps_other_topics():
    rows = DISTINCT + PARAPHRASES + [vary_case_and_space(DISTINCT[6])]
    out, report = deduplicate(Dataset.from_dict({"prompt": rows}))  # static MiniLM, threshold 0.9
    assert out["prompt"][:] == DISTINCT
    assert [g.rows for g in report.groups] == [[0, 8], [1, 9], [2, 10], [3, 11], [4, 12], [6, 13]]
    assert (report.exact, report.semantic) == (1, 5)
    assert report.embedder == "sentence-transformers/all-MiniLM-L6-v2 (static, 256 dims)"
    train = Dataset.from_dict({"prompt": PARAPHRASES + DISTINCT[5:]})
    clean, leaks = decontaminate(train, Dataset.from_dict({"prompt": DISTINCT[:5]}))
    assert [m.row for m in leaks.matches] == [0, 1, 2, 3, 4] and clean["prompt"][:] == DISTINCT[5:]


def test_greedy_over_a_component_larger_than_a_block_equals_the_one_by_one_rule():
    """The block-wise greedy (one matrix product per block of 1,024) decides as the plain loop does."""
    rng = np.random.default_rng(0)
    n = 2600  # three blocks
    vecs = rng.normal(size=(n, 8)).astype(np.float32) + 3.0  # one tight cone: most pairs are similar
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = rng.permutation(n)
    threshold = 0.985
    parent, similarity = np.full(n, -1), np.ones(n, dtype=np.float32)
    search._greedy(ids, vecs, threshold, parent, similarity)
    expected = np.full(n, -1)
    kept: list[int] = []
    for i in range(n):  # the rule, row by row
        if kept:
            sims = vecs[kept] @ vecs[i]
            best = int(np.argmax(sims))
            if sims[best] >= threshold - search.SIMILARITY_SLACK:
                expected[ids[i]] = ids[kept[best]]
                continue
        kept.append(i)
    assert 100 < len(kept) < n - 100  # both outcomes happen, across block boundaries
    np.testing.assert_array_equal(parent, expected)
    removed = parent >= 0
    assert (similarity[removed] >= threshold - search.SIMILARITY_SLACK).all()
