"""REAL pair selection against brute-force computations written here with plain Python loops."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re

import numpy as np
import pytest
from datasets import Dataset, List, Value
from datasets.fingerprint import Hasher

from real_hub.errors import ColumnError, ConfigError, RowError
from real_hub.real.budget import BudgetReport, budget_filter
from real_hub.real.select import PairSimilarity, SelectPairs, select_pairs

DIMS = 6

# ----------------------------------------------------------------------------------------------
# Independent reference: plain Python over all pairs


def cosine(u, v):
    dot = sum(float(a) * float(b) for a, b in zip(u, v, strict=True))
    return dot / math.sqrt(sum(float(a) ** 2 for a in u)) / math.sqrt(sum(float(b) ** 2 for b in v))


def unit(v):
    norm = math.sqrt(sum(float(a) ** 2 for a in v))
    return [float(a) / norm for a in v]


def sq_dist(u, v):
    return sum((a - b) ** 2 for a, b in zip(u, v, strict=True))


def mean(vectors):
    return [sum(col) / len(vectors) for col in zip(*vectors, strict=True)]


def distinct_positions(responses):
    seen, keep = set(), []
    for j, text in enumerate(responses):
        if text not in seen:
            seen.add(text)
            keep.append(j)
    return keep


def splitmix64(x):
    mask = (1 << 64) - 1
    z = x & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def random_pairs(pairs, seed, prompt, responses, k):
    """The documented rule: priority of the p-th pair is splitmix64(key + (p + 1) * golden gamma)."""
    text = json.dumps([seed, prompt, responses], sort_keys=True, ensure_ascii=False)
    key = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    gamma = 0x9E3779B97F4A7C15
    ranked = sorted(range(len(pairs)), key=lambda p: (splitmix64(key + (p + 1) * gamma), p))
    return [pairs[p] for p in ranked[:k]]


def centroid_pairs(vectors, k):
    """2-means from the most dissimilar pair, Lloyd until stable (max 20), r-th nearest with r-th nearest."""
    x = [unit(v) for v in vectors]
    n = len(x)
    best = None
    for i, j in itertools.combinations(range(n), 2):
        s = cosine(x[i], x[j])
        if best is None or s < best[0]:
            best = (s, i, j)
    _, p, q = best
    centres = [x[p], x[q]]

    def assign(c):
        return [0 if sq_dist(v, c[0]) <= sq_dist(v, c[1]) else 1 for v in x]

    def update(labels, old):
        new = []
        for cluster in (0, 1):
            members = [x[i] for i in range(n) if labels[i] == cluster]
            new.append(mean(members) if members else old[cluster])
        return new

    labels = assign(centres)
    for _ in range(20):
        centres = update(labels, centres)
        new = assign(centres)
        if new == labels:
            break
        labels = new
    centres = update(labels, centres)
    a_label = labels[p]
    # distances equal in exact arithmetic (the two members of a 2-member cluster, identical
    # embeddings) differ in the last bits: compare them at 1e-9, then by index
    ranked_a = sorted(
        (round(sq_dist(x[i], centres[a_label]), 9), i) for i in range(n) if labels[i] == a_label
    )
    ranked_b = sorted(
        (round(sq_dist(x[i], centres[1 - a_label]), 9), i) for i in range(n) if labels[i] != a_label
    )
    return [(min(a, b), max(a, b)) for (_, a), (_, b) in zip(ranked_a, ranked_b, strict=False)][:k]


def brute_force(rows, strategy, k, seed=0):
    """Expected output rows and skip counts of SelectPairs over ``rows`` (a list of dicts)."""
    out, skipped = [], {}
    for row in rows:
        keep = distinct_positions(row["responses"])
        emb = row["responses_embedding"]
        first = [row["responses"].index(t) for t in row["responses"]]  # a repeated text: its first copy
        matrix = [[cosine(emb[first[i]], emb[first[j]]) for j in first] for i in first]
        if len(keep) < 2:
            skipped["fewer_than_two_responses"] = skipped.get("fewer_than_two_responses", 0) + 1
            continue
        pairs = list(itertools.combinations(keep, 2))  # (i, j) ascending
        sims = {(i, j): cosine(emb[i], emb[j]) for i, j in pairs}
        if strategy == "dissimilar":
            chosen = sorted(pairs, key=lambda pair: sims[pair])[:k]  # sorted() is stable: ties by (i, j)
        elif strategy == "similar":
            chosen = sorted(pairs, key=lambda pair: -sims[pair])[:k]
        elif strategy == "random":
            chosen = random_pairs(pairs, seed, row["prompt"], row["responses"], k)
        else:
            local = centroid_pairs([emb[i] for i in keep], k)
            chosen = [(keep[i], keep[j]) for i, j in local]
        for i, j in chosen:
            scores = row.get("scores")
            if scores is not None:
                if scores[i] == scores[j]:
                    skipped["tied_scores"] = skipped.get("tied_scores", 0) + 1
                    continue
                a, b = (i, j) if scores[i] > scores[j] else (j, i)
                sa, sb = float(scores[a]), float(scores[b])
            else:
                a, b, sa, sb = i, j, None, None
            out.append(
                {
                    "prompt": row["prompt"],
                    "chosen": row["responses"][a],
                    "rejected": row["responses"][b],
                    "similarity": sims[(i, j)],
                    "strategy": strategy,
                    "chosen_score": sa,
                    "rejected_score": sb,
                    "chosen_index": a,
                    "rejected_index": b,
                    "source_id": row["source_id"],
                    "domain": row["domain"],
                    "candidate_similarity": matrix,
                }
            )
    return out, skipped


# ----------------------------------------------------------------------------------------------
# Data


def random_vectors(rng, n, dims=DIMS):
    v = rng.normal(size=(n, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_rows(seed=0, count=60):
    """Candidates rows with 1..6 responses, duplicate texts, tied similarities, ties in scores, no scores."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(count):
        n = int(rng.integers(2, 7)) if r % 10 else 1
        responses = [f"answer {r}.{j}" for j in range(n)]
        vectors = random_vectors(rng, n)
        if n >= 3 and r % 4 == 0:  # a duplicated text (its embedding may differ: the first one counts)
            responses[2] = responses[0]
        if n >= 3 and r % 5 == 1:  # two distinct texts with the same embedding: tied similarities
            vectors[2] = vectors[1]
        if n == 2 and r % 7 == 3:
            responses[1] = responses[0]  # one distinct response only
        if r % 3 == 0:
            scores = None
        else:
            scores = [float(rng.integers(0, 4)) for _ in range(n)]  # small range: some ties
        rows.append(
            {
                "prompt": f"question {r}",
                "responses": responses,
                "scores": scores,
                # not normalised on purpose: SelectPairs re-normalises
                "responses_embedding": (vectors * rng.uniform(0.5, 2.0)).tolist(),
                "source_id": f"src-{r}",
                "domain": ["chat", "safety"][r % 2],
                "tags": ["x"] * (r % 3),
            }
        )
    return rows


def to_dataset(rows):
    return Dataset.from_list(rows)


def run_map(ds, processor, batch_size=1000, **kwargs):
    return ds.map(
        processor,
        batched=True,
        batch_size=batch_size,
        remove_columns=ds.column_names,
        features=processor.output_features(ds.features),
        load_from_cache_file=False,
        **kwargs,
    )


def assert_rows_equal(actual, expected):
    assert len(actual) == len(expected)
    approximate = ("similarity", "candidate_similarity")
    for got, want in zip(actual, expected, strict=True):
        assert got["similarity"] == pytest.approx(want["similarity"], abs=1e-5)
        np.testing.assert_allclose(
            np.asarray(got["candidate_similarity"], dtype=np.float64), want["candidate_similarity"], atol=1e-5
        )
        assert {k: v for k, v in got.items() if k not in approximate} == {
            k: v for k, v in want.items() if k not in approximate
        }


@pytest.fixture(scope="module")
def rows():
    return make_rows()


@pytest.fixture(scope="module")
def dataset(rows):
    return to_dataset(rows)


# ----------------------------------------------------------------------------------------------
# SelectPairs


@pytest.mark.parametrize("strategy", ["dissimilar", "similar", "random", "centroid"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_strategies_match_brute_force_for_every_batch_size(rows, dataset, strategy, k):
    expected, _ = brute_force(rows, strategy, k, seed=7)
    processor = SelectPairs(strategy, pairs_per_prompt=k, seed=7)
    for batch_size in (1, 4, 1000):
        assert_rows_equal(run_map(dataset, processor, batch_size).to_list(), expected)


def test_the_data_exercises_ties_duplicates_and_sizes(rows):
    sizes = {len(distinct_positions(r["responses"])) for r in rows}
    assert {1, 2, 3, 4, 5, 6} <= sizes
    _, skipped = brute_force(rows, "dissimilar", 3)
    assert skipped["tied_scores"] > 0 and skipped["fewer_than_two_responses"] > 0
    tied = [
        r
        for r in rows
        if len(r["responses"]) >= 3 and r["responses_embedding"][1] == r["responses_embedding"][2]
    ]
    assert tied


@pytest.mark.parametrize("strategy", ["dissimilar", "similar", "random", "centroid"])
def test_select_pairs_counts_skips_like_brute_force(rows, dataset, strategy):
    expected, skipped = brute_force(rows, strategy, 2, seed=3)
    pairs, report = select_pairs(dataset, strategy, pairs_per_prompt=2, seed=3, batch_size=7)
    assert_rows_equal(pairs.to_list(), expected)
    assert report.skipped == skipped
    assert report.prompts_in == len(rows)
    assert report.pairs_out == len(expected)
    assert "skip_reason" not in pairs.column_names
    assert report.to_dict()["skipped"] == skipped


def test_orientation_follows_scores():
    ds = Dataset.from_dict(
        {
            "prompt": ["p"],
            "responses": [["a", "b", "c"]],
            "scores": [[1.0, 3.0, 2.0]],
            "responses_embedding": [[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]],
        }
    )
    # cosines: (a, b) = -1, (a, c) = 0, (b, c) = 0
    (row,) = run_map(ds, SelectPairs("dissimilar")).to_list()
    assert (row["chosen"], row["rejected"], row["chosen_index"], row["rejected_index"]) == ("b", "a", 1, 0)
    assert (row["chosen_score"], row["rejected_score"], row["similarity"]) == (3.0, 1.0, -1.0)
    hard = run_map(ds, SelectPairs("hard", pairs_per_prompt=2)).to_list()  # ties at 0: (a, c) before (b, c)
    assert [(r["chosen"], r["rejected"]) for r in hard] == [("c", "a"), ("b", "c")]
    assert {r["strategy"] for r in hard} == {"similar"}


def test_without_scores_chosen_is_the_earlier_response():
    ds = Dataset.from_dict(
        {"prompt": ["p"], "responses": [["a", "b", "c"]], "responses_embedding": [[[1, 0], [0, 1], [-1, 0]]]}
    )
    (row,) = run_map(ds, SelectPairs("easy")).to_list()
    assert (row["chosen"], row["rejected"], row["chosen_score"], row["rejected_score"]) == (
        "a",
        "c",
        None,
        None,
    )


def test_tied_scores_are_not_emitted_and_are_counted():
    ds = Dataset.from_dict(
        {
            "prompt": ["p"],
            "responses": [["a", "b", "c"]],
            "scores": [[2.0, 2.0, 1.0]],
            "responses_embedding": [[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]],
        }
    )
    pairs, report = select_pairs(ds, "dissimilar", pairs_per_prompt=2)
    assert [(r["chosen"], r["rejected"]) for r in pairs] == [("a", "c")]
    assert report.skipped == {"tied_scores": 1}
    rows = run_map(ds, SelectPairs("dissimilar", pairs_per_prompt=2, keep_skipped=True)).to_list()
    assert [r["skip_reason"] for r in rows] == ["tied_scores", None]
    assert rows[0]["chosen"] is None and rows[0]["rejected"] is None


def test_rows_with_fewer_than_two_distinct_responses_are_counted():
    ds = Dataset.from_dict(
        {
            "prompt": ["one", "dup", "two"],
            "responses": [["x"], ["y", "y"], ["u", "v"]],
            "responses_embedding": [[[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]],
        }
    )
    pairs, report = select_pairs(ds, "similar")
    assert report.skipped == {"fewer_than_two_responses": 2}
    assert (report.prompts_in, report.pairs_out) == (3, 1)
    assert pairs["prompt"] == ["two"]


def test_centroid_with_identical_embeddings_is_counted_as_one_cluster():
    ds = Dataset.from_dict(
        {"prompt": ["p"], "responses": [["a", "b", "c"]], "responses_embedding": [[[1.0, 2.0]] * 3]}
    )
    pairs, report = select_pairs(ds, "centroid")
    assert len(pairs) == 0
    assert report.skipped == {"single_cluster": 1}


def test_random_is_seeded_and_independent_of_batches_and_order(dataset):
    first = run_map(dataset, SelectPairs("random", pairs_per_prompt=2, seed=11), batch_size=3).to_list()
    again = run_map(dataset, SelectPairs("random", pairs_per_prompt=2, seed=11), batch_size=50).to_list()
    other = run_map(dataset, SelectPairs("random", pairs_per_prompt=2, seed=12), batch_size=3).to_list()
    assert first == again
    assert first != other
    shuffled = dataset.shuffle(seed=0)
    by_source = {}
    for r in run_map(shuffled, SelectPairs("random", pairs_per_prompt=2, seed=11), batch_size=5).to_list():
        by_source.setdefault(r["source_id"], []).append((r["chosen_index"], r["rejected_index"]))
    expected = {}
    for r in first:
        expected.setdefault(r["source_id"], []).append((r["chosen_index"], r["rejected_index"]))
    assert by_source == expected


def test_random_picks_every_pair_about_equally_often():
    rng = np.random.default_rng(1)
    count = 3000
    ds = Dataset.from_dict(
        {
            "prompt": [f"p{i}" for i in range(count)],
            "responses": [["a", "b", "c"]] * count,
            "responses_embedding": [random_vectors(rng, 3, 4).tolist() for _ in range(count)],
        }
    )
    picks = run_map(ds, SelectPairs("random")).to_list()
    counts = {}
    for r in picks:
        key = (r["chosen_index"], r["rejected_index"])
        counts[key] = counts.get(key, 0) + 1
    assert set(counts) == {(0, 1), (0, 2), (1, 2)}
    assert all(abs(c - count / 3) < 100 for c in counts.values())  # about 4 standard deviations


def test_passthrough_columns_and_declared_features(dataset):
    processor = SelectPairs("dissimilar")
    out = dataset.map(processor, batched=True, remove_columns=dataset.column_names, features=None)
    assert "domain" in out.column_names and "source_id" in out.column_names
    assert "tags" not in out.column_names and "responses_embedding" not in out.column_names
    declared = processor.output_features(dataset.features)
    assert set(declared) == set(out.column_names)
    for name in ("chosen", "rejected", "similarity", "chosen_index", "domain", "source_id", "prompt"):
        assert declared[name] == out.features[name]


@pytest.mark.parametrize("strategy", ["dissimilar", "centroid", "random"])
def test_dataset_iterable_numpy_and_arrow_inputs_agree(dataset, strategy):
    processor = SelectPairs(strategy, pairs_per_prompt=2)
    expected = run_map(dataset, processor, batch_size=8).to_list()
    iterable = dataset.to_iterable_dataset().map(
        processor, batched=True, batch_size=8, remove_columns=dataset.column_names
    )
    assert_rows_equal(list(iterable), expected)
    # datasets' numpy formatter fails on a list column whose batch starts with None: keep scored rows
    scored = dataset.filter(lambda row: row["scores"] is not None)
    expected = run_map(scored, processor, batch_size=8).to_list()
    for fmt in ("numpy", "arrow"):
        got = run_map(scored.with_format(fmt), processor, batch_size=8)
        assert_rows_equal(got.with_format(None).to_list(), expected)


def test_conversational_prompts_pass_through(rows):
    messages = [dict(r, prompt=[{"role": "user", "content": r["prompt"]}]) for r in rows]
    ds = to_dataset(messages)
    expected, _ = brute_force(messages, "dissimilar", 2)
    processor = SelectPairs("dissimilar", pairs_per_prompt=2)
    assert_rows_equal(run_map(ds, processor, batch_size=5).to_list(), expected)
    iterable = ds.to_iterable_dataset().map(
        processor, batched=True, batch_size=5, remove_columns=ds.column_names
    )
    assert_rows_equal(list(iterable), expected)


def test_a_ray_style_numpy_batch_gives_the_same_rows(rows):
    sample = [r for r in rows if r["scores"] is not None][:10]
    plain = {k: [r[k] for r in sample] for k in ("prompt", "responses", "scores", "responses_embedding")}
    as_numpy = {
        "prompt": np.array(plain["prompt"], dtype=object),
        "responses": np.array([np.array(r) for r in plain["responses"]] + [None], dtype=object)[:-1],
        "scores": np.array([np.array(s) for s in plain["scores"]] + [None], dtype=object)[:-1],
        "responses_embedding": np.array(
            [np.array(e, dtype=np.float32) for e in plain["responses_embedding"]] + [None], dtype=object
        )[:-1],
    }
    processor = SelectPairs("similar", pairs_per_prompt=2)
    expected, got = processor(plain), processor(as_numpy)
    assert got["chosen"] == expected["chosen"] and got["chosen_index"] == expected["chosen_index"]
    np.testing.assert_allclose(got["similarity"], expected["similarity"], atol=1e-6)


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="expected one of 'dissimilar', 'similar', 'random', 'centroid'"):
        SelectPairs("best")
    with pytest.raises(ConfigError, match="pairs_per_prompt"):
        SelectPairs("dissimilar", pairs_per_prompt=0)
    assert SelectPairs("easy").strategy == "dissimilar" and SelectPairs("hard").strategy == "similar"


def test_missing_column_lists_the_present_ones():
    batch = {"prompt": ["p"], "responses": [["a", "b"]]}
    with pytest.raises(ColumnError, match=r"'responses_embedding'.*\['prompt', 'responses'\]"):
        SelectPairs()(batch)


def candidates_batch(**overrides):
    batch = {
        "prompt": ["p0", "p1"],
        "responses": [["a", "b"], ["c", "d", "e"]],
        "scores": [[1.0, 2.0], [1.0, 2.0, 3.0]],
        "responses_embedding": [[[1, 0], [0, 1]], [[1, 0], [0, 1], [1, 1]]],
    }
    return {**batch, **overrides}


def test_ragged_scores_name_the_row():
    batch = candidates_batch(scores=[[1.0, 2.0], [1.0, 2.0]])
    with pytest.raises(
        RowError, match=r"row 1 of this batch.*'scores'.*one score per response \(3\), found 2"
    ):
        SelectPairs()(batch)
    with pytest.raises(RowError, match=r"row 41, column 'scores'"):
        SelectPairs()(batch, indices=[40, 41])


def test_ragged_embeddings_name_the_row():
    batch = candidates_batch(responses_embedding=[[[1, 0], [0, 1]], [[1, 0], [0, 1]]])
    with pytest.raises(
        RowError, match=r"row 8, column 'responses_embedding': expected one embedding per response"
    ):
        SelectPairs()(batch, indices=[7, 8])
    batch = candidates_batch(responses_embedding=[[[1, 0], [0, 1]], [[1, 0], [0, 1, 2], [1, 1]]])
    with pytest.raises(RowError, match=r"row 1 of this batch.*column 'responses_embedding'.*shape \(3,\)"):
        SelectPairs()(batch)


def test_ragged_embeddings_from_arrow_name_the_dataset_row():
    ds = Dataset.from_dict(
        candidates_batch(responses_embedding=[[[1, 0], [0, 1]], [[1, 0], [0, 1, 2], [1, 1]]])
    )
    with pytest.raises(
        RowError, match=r"row 1, column 'responses_embedding': expected embedding vectors of 2"
    ):
        ds.map(SelectPairs(), batched=True, with_indices=True, remove_columns=ds.column_names)


@pytest.mark.parametrize(
    ("responses", "message"),
    [
        (
            [["a", None], ["c", "d", "e"]],
            r"row 0 of this batch.*column 'responses\[1\]': expected a non-empty",
        ),
        ([["a", "b"], ["c", "", "e"]], r"row 1 of this batch.*column 'responses\[1\]': .*empty"),
        ([["a", "b"], ["c", 3, "e"]], r"row 1 of this batch.*column 'responses\[1\]': expected a string"),
        ([None, ["c", "d", "e"]], r"row 0 of this batch.*column 'responses': expected a list"),
    ],
)
def test_bad_responses_name_row_and_item(responses, message):
    with pytest.raises(RowError, match=message):
        SelectPairs()(candidates_batch(responses=responses))


def test_zero_embedding_is_an_error():
    batch = candidates_batch(responses_embedding=[[[1, 0], [0, 1]], [[1, 0], [0, 0], [1, 1]]])
    with pytest.raises(RowError, match=r"row 1 of this batch.*non-zero"):
        SelectPairs()(batch)


def test_fingerprint_is_the_configuration():
    base = dict(
        pairs_per_prompt=2,
        embedding_column="e",
        responses_column="r",
        scores_column="s",
        seed=3,
        keep_skipped=False,
    )
    reference = Hasher.hash(SelectPairs("dissimilar", **base))
    assert Hasher.hash(SelectPairs("dissimilar", **dict(base))) == reference
    assert Hasher.hash(SelectPairs("easy", **base)) == reference
    changes = {
        "pairs_per_prompt": 3,
        "embedding_column": "e2",
        "responses_column": "r2",
        "scores_column": "s2",
        "seed": 4,
        "keep_skipped": True,
    }
    hashes = {
        Hasher.hash(SelectPairs("dissimilar", **{**base, key: value})) for key, value in changes.items()
    }
    hashes |= {Hasher.hash(SelectPairs(s, **base)) for s in ("similar", "random", "centroid")}
    assert len(hashes) == len(changes) + 3 and reference not in hashes
    assert Hasher.hash(PairSimilarity()) == Hasher.hash(PairSimilarity())
    assert Hasher.hash(PairSimilarity(output_column="sim")) != Hasher.hash(PairSimilarity())


def test_used_processor_keeps_its_fingerprint(dataset):
    processor = SelectPairs("random")
    before = Hasher.hash(processor)
    run_map(dataset, processor)
    assert Hasher.hash(processor) == before


# ----------------------------------------------------------------------------------------------
# PairSimilarity


def pairs_dataset(count=40, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    chosen = rng.normal(size=(count, DIMS)).astype(dtype)
    rejected = rng.normal(size=(count, DIMS)).astype(dtype)
    return Dataset.from_dict(
        {
            "prompt": [f"p{i}" for i in range(count)],
            "chosen": [f"c{i}" for i in range(count)],
            "rejected": [f"r{i}" for i in range(count)],
            "chosen_embedding": chosen.tolist(),
            "rejected_embedding": rejected.tolist(),
        }
    )


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_pair_similarity_is_the_cosine(dtype):
    ds = pairs_dataset(dtype=dtype)
    if dtype == "float16":
        for name in ("chosen_embedding", "rejected_embedding"):
            ds = ds.cast_column(name, List(Value("float16")))
    expected = [cosine(c, r) for c, r in zip(ds["chosen_embedding"], ds["rejected_embedding"], strict=True)]
    for fmt in (None, "numpy", "arrow"):
        out = ds.with_format(fmt).map(PairSimilarity(), batched=True, batch_size=7)
        np.testing.assert_allclose(
            out.with_format(None)["similarity"], expected, atol=1e-3 if dtype == "float16" else 1e-6
        )
    iterable = ds.to_iterable_dataset().map(PairSimilarity(), batched=True, batch_size=7)
    np.testing.assert_allclose(
        [r["similarity"] for r in iterable], expected, atol=1e-3 if dtype == "float16" else 1e-6
    )


def test_pair_similarity_errors():
    ds = pairs_dataset(count=3)
    with pytest.raises(
        ColumnError, match=r"'rejected_embedding'.*\['prompt', 'chosen', 'rejected', 'chosen_embedding'\]"
    ):
        ds.remove_columns("rejected_embedding").map(PairSimilarity(), batched=True)
    batch = {
        "chosen_embedding": [[1.0, 0.0], [1.0, 0.0, 0.0]],
        "rejected_embedding": [[1.0, 0.0], [1.0, 0.0]],
    }
    with pytest.raises(RowError, match=r"row 6, column 'chosen_embedding'.*shape \(3,\)"):
        PairSimilarity()(batch, indices=[5, 6])
    assert PairSimilarity().output_features()["similarity"].dtype == "float64"


# ----------------------------------------------------------------------------------------------
# budget_filter


def with_similarities(values):
    return Dataset.from_dict({"row": list(range(len(values))), "similarity": list(values)})


@pytest.mark.parametrize("budget", [0.1, 0.25, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("strategy", ["dissimilar", "similar", "random"])
def test_budget_keeps_exactly_round_budget_n(budget, strategy):
    rng = np.random.default_rng(5)
    values = np.round(rng.uniform(-1, 1, size=101), 2)  # rounding makes ties
    filtered, report = budget_filter(with_similarities(values), budget, strategy, seed=1)
    k = round(budget * 101)
    assert len(filtered) == report.pairs_kept == k and report.pairs_in == 101
    kept_rows = filtered["row"]
    assert kept_rows == sorted(kept_rows)  # original order
    dropped = [float(values[i]) for i in range(101) if i not in set(kept_rows)]
    kept = [float(values[i]) for i in kept_rows]
    if strategy == "dissimilar":
        assert not dropped or max(kept) <= min(dropped)
        assert kept_rows == sorted(sorted(range(101), key=lambda i: (values[i], i))[:k])
    elif strategy == "similar":
        assert not dropped or min(kept) >= max(dropped)
        assert kept_rows == sorted(sorted(range(101), key=lambda i: (-values[i], i))[:k])
    assert report.annotation_saved == pytest.approx(1 - k / 101)
    assert report.kept_similarity == pytest.approx(
        {"min": min(kept), "mean": sum(kept) / k, "max": max(kept)}
    )
    if dropped:
        assert report.dropped_similarity["max"] == pytest.approx(max(dropped))
    assert report.to_dict()["annotation_saved"] == report.annotation_saved


def test_budget_uses_builtin_round():
    filtered, report = budget_filter(with_similarities([0.1, 0.2, 0.3, 0.4, 0.5]), 0.5)
    assert report.pairs_kept == round(2.5) == 2
    assert filtered["row"] == [0, 1]


def test_random_budget_is_seeded():
    ds = with_similarities(np.linspace(-1, 1, 200))
    a, _ = budget_filter(ds, 0.3, "random", seed=4)
    b, _ = budget_filter(ds, 0.3, "random", seed=4)
    c, _ = budget_filter(ds, 0.3, "random", seed=5)
    assert a["row"] == b["row"] != c["row"]
    assert len(a) == 60


@pytest.mark.parametrize("budget", [0, -0.2, 1.5, True, "half"])
def test_budget_out_of_range_is_a_config_error(budget):
    with pytest.raises(ConfigError, match=re.escape("budget must be a fraction in (0, 1]")):
        budget_filter(with_similarities([0.1, 0.2]), budget)


def test_budget_computes_similarity_from_embeddings():
    ds = pairs_dataset(count=30)
    expected = [cosine(c, r) for c, r in zip(ds["chosen_embedding"], ds["rejected_embedding"], strict=True)]
    filtered, report = budget_filter(ds, 0.4)
    kept_expected = sorted(sorted(range(30), key=lambda i: (expected[i], i))[:12])
    assert [int(p[1:]) for p in filtered["prompt"]] == kept_expected
    np.testing.assert_allclose(filtered["similarity"], [expected[i] for i in kept_expected], atol=1e-6)
    assert isinstance(report, BudgetReport) and report.pairs_kept == 12


def test_budget_without_similarity_or_embeddings_lists_columns():
    ds = Dataset.from_dict({"prompt": ["p"], "chosen": ["a"], "rejected": ["b"]})
    with pytest.raises(ColumnError, match=r"'similarity'.*\['prompt', 'chosen', 'rejected'\]"):
        budget_filter(ds, 0.5)
    with pytest.raises(ConfigError, match="expected one of 'dissimilar', 'similar', 'random'"):
        budget_filter(with_similarities([0.1]), 0.5, "centroid")


def test_budget_names_the_row_without_a_similarity():
    ds = Dataset.from_dict({"similarity": [0.1, None, 0.3]})
    with pytest.raises(RowError, match=r"row 1, column 'similarity': expected a similarity, found None"):
        budget_filter(ds, 0.5)


def test_each_row_carries_its_prompts_candidate_similarity_matrix():
    ds = Dataset.from_dict(
        {
            "prompt": ["p", "q"],
            "responses": [["x", "y", "x", "z"], ["u", "u"]],
            "responses_embedding": [
                [[1.0, 0.0], [0.0, 2.0], [5.0, 5.0], [3.0, 3.0]],
                [[1.0, 0.0], [0.0, 1.0]],
            ],
        }
    )
    processor = SelectPairs("dissimilar", keep_skipped=True)
    out = run_map(ds, processor)
    assert out.features["candidate_similarity"] == List(List(Value("float32")))
    h = math.sqrt(0.5)
    # the repeated "x" counts as its first copy (its own embedding is ignored), as in the selection
    want = [[1, 0, 1, h], [0, 1, 0, h], [1, 0, 1, h], [h, h, h, 1]]
    np.testing.assert_allclose(out[0]["candidate_similarity"], want, atol=1e-6)
    assert (out[0]["chosen_index"], out[0]["rejected_index"]) == (0, 1)
    # a prompt with one distinct text is skipped, and its matrix says why: every copy is the same text
    assert out[1]["skip_reason"] == "fewer_than_two_responses"
    assert out[1]["candidate_similarity"] == [[1.0, 1.0], [1.0, 1.0]]
