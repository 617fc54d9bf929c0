"""Labelling from rewards, against plain-loop references written here."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher

from real_hub.drsow.label import LabelReport, OrientByReward, PairsFromRewards, label_pairs, paired_columns
from real_hub.errors import ColumnError, ConfigError, RowError

# ----------------------------------------------------------------------------------------------
# Independent references


def orient_reference(rows, min_margin=0.0):
    """Plain loop: orient, margin, flipped; count abstentions."""
    out, skipped = [], Counter()
    for row in rows:
        a, b = row["chosen_reward"], row["rejected_reward"]
        if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or math.isnan(b):
            skipped["missing_reward"] += 1
            continue
        if a == b:
            skipped["tie"] += 1
            continue
        if abs(a - b) < min_margin:
            skipped["abstain_low_margin"] += 1
            continue
        new = dict(row)
        if b > a:
            for left, right in [
                ("chosen", "rejected"),
                ("chosen_reward", "rejected_reward"),
                ("chosen_score", "rejected_score"),
                ("ref_chosen_logps", "ref_rejected_logps"),
                ("chosen_embedding", "rejected_embedding"),
            ]:
                new[left], new[right] = row[right], row[left]
        new["margin"] = abs(a - b)
        new["flipped"] = b > a
        out.append(new)
    return out, dict(skipped)


def splitmix64(x):
    mask = (1 << 64) - 1
    z = x & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def candidates_reference(rows, mode, seed=0, min_margin=0.0):
    """Plain loop: distinct responses, best (highest, lowest index), worst or a hashed random other."""
    out, skipped = [], Counter()
    for row in rows:
        texts, rewards = row["responses"], row["rewards"]
        keep = [j for j, t in enumerate(texts) if t not in texts[:j]]
        if len(keep) < 2:
            skipped["fewer_than_two_responses"] += 1
            continue
        best = keep[0]
        for j in keep:
            if rewards[j] > rewards[best]:
                best = j
        worst = keep[0]
        for j in keep:
            if rewards[j] < rewards[worst]:
                worst = j
        if rewards[best] == rewards[worst]:
            skipped["tied_rewards"] += 1
            continue
        if mode == "best-vs-worst":
            other = worst
        else:
            others = [j for j in keep if j != best]
            text = json.dumps([seed, row["prompt"], texts], sort_keys=True, ensure_ascii=False)
            key = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            other = others[splitmix64(key + 0x9E3779B97F4A7C15) % len(others)]
        margin = rewards[best] - rewards[other]
        if margin == 0:
            skipped["tie"] += 1
            continue
        if margin < min_margin:
            skipped["abstain_low_margin"] += 1
            continue
        scores = row.get("scores")
        out.append(
            {
                "prompt": row["prompt"],
                "chosen": texts[best],
                "rejected": texts[other],
                "margin": margin,
                "chosen_reward": rewards[best],
                "rejected_reward": rewards[other],
                "chosen_index": best,
                "rejected_index": other,
                "chosen_score": None if scores is None else float(scores[best]),
                "rejected_score": None if scores is None else float(scores[other]),
                "strategy": mode,
            }
        )
    return out, dict(skipped)


# ----------------------------------------------------------------------------------------------
# Fixtures

PAIRS = [
    # chosen reward higher: kept as is
    {"chosen_reward": 2.0, "rejected_reward": 0.5, "chosen_score": 1.0, "rejected_score": 0.0},
    # rejected reward higher: flipped
    {"chosen_reward": -1.0, "rejected_reward": 1.5, "chosen_score": 1.0, "rejected_score": 0.0},
    # tie
    {"chosen_reward": 0.25, "rejected_reward": 0.25, "chosen_score": 1.0, "rejected_score": 0.0},
    # small margin (0.1), flipped
    {"chosen_reward": 0.0, "rejected_reward": 0.1, "chosen_score": 2.0, "rejected_score": 1.0},
    # missing reward
    {"chosen_reward": None, "rejected_reward": 1.0, "chosen_score": 1.0, "rejected_score": 0.0},
    # NaN reward
    {"chosen_reward": 1.0, "rejected_reward": float("nan"), "chosen_score": 1.0, "rejected_score": 0.0},
    # margin 0.5, flipped
    {"chosen_reward": 3.0, "rejected_reward": 3.5, "chosen_score": 0.0, "rejected_score": 4.0},
]


def pair_rows():
    rows = []
    for i, extra in enumerate(PAIRS):
        rows.append(
            {
                "prompt": f"prompt {i}",
                "chosen": f"chosen {i}",
                "rejected": f"rejected {i}",
                **extra,
                "ref_chosen_logps": -float(i),
                "ref_rejected_logps": -10.0 - i,
                "chosen_embedding": [float(i), 1.0],
                "rejected_embedding": [0.0, float(-i)],
                "similarity": 0.1 * i,
                "source_id": f"id-{i}",
            }
        )
    return rows


def run_orient(rows, processor, batch_size=1000):
    ds = Dataset.from_list(rows)
    return ds.map(
        processor,
        batched=True,
        batch_size=batch_size,
        remove_columns=ds.column_names,
        features=processor.output_features(ds.features),
    )


def same_rows(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert set(g) == set(w), (sorted(g), sorted(w))
        for k in w:
            if isinstance(w[k], float):
                assert g[k] == pytest.approx(w[k], abs=1e-12), k
            else:
                assert g[k] == w[k], k


# ----------------------------------------------------------------------------------------------
# OrientByReward


@pytest.mark.parametrize("min_margin", [0.0, 0.3, 0.5])
@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_orient_matches_reference(min_margin, batch_size):
    rows = pair_rows()
    got = run_orient(rows, OrientByReward(min_margin), batch_size).to_list()
    want, _ = orient_reference(rows, min_margin)
    same_rows(got, want)


def test_orient_by_hand():
    rows = pair_rows()
    got = run_orient(rows, OrientByReward(0.3)).to_list()
    # kept: row 0 (margin 1.5), row 1 (2.5, flipped), row 6 (0.5, flipped); row 3's margin 0.1 < 0.3
    assert [r["source_id"] for r in got] == ["id-0", "id-1", "id-6"]
    assert [r["margin"] for r in got] == [1.5, 2.5, 0.5]
    assert [r["flipped"] for r in got] == [False, True, True]
    flipped = got[1]
    assert (flipped["chosen"], flipped["rejected"]) == ("rejected 1", "chosen 1")
    assert (flipped["chosen_reward"], flipped["rejected_reward"]) == (1.5, -1.0)
    assert (flipped["chosen_score"], flipped["rejected_score"]) == (0.0, 1.0)
    assert (flipped["ref_chosen_logps"], flipped["ref_rejected_logps"]) == (-11.0, -1.0)
    assert (flipped["chosen_embedding"], flipped["rejected_embedding"]) == ([0.0, -1.0], [1.0, 1.0])
    assert flipped["similarity"] == pytest.approx(0.1) and flipped["prompt"] == "prompt 1"


def test_label_pairs_counts_and_report():
    rows = pair_rows()
    pairs, report = label_pairs(Dataset.from_list(rows), min_margin=0.3, batch_size=2)
    want, skipped = orient_reference(rows, 0.3)
    assert skipped == {"tie": 1, "abstain_low_margin": 1, "missing_reward": 2}
    assert isinstance(report, LabelReport)
    assert report.mode == "orient" and report.rows_in == 7 and report.pairs_out == 3 == len(pairs)
    assert report.skipped == skipped and report.n_skipped == 4
    assert report.flipped == 2
    assert report.margin == {"count": 3, "min": 0.5, "mean": 1.5, "median": 1.5, "max": 2.5}
    assert "skip_reason" not in pairs.column_names
    same_rows(pairs.to_list(), want)
    assert report.to_dict()["n_skipped"] == 4


def test_orient_keep_skipped_emits_unchanged_rows_with_reason():
    rows = pair_rows()
    got = run_orient(rows, OrientByReward(0.3, keep_skipped=True)).to_list()
    assert [r["skip_reason"] for r in got] == [
        None,
        None,
        "tie",
        "abstain_low_margin",
        "missing_reward",
        "missing_reward",
        None,
    ]
    low = got[3]  # not swapped although its rejected reward is higher
    assert (low["chosen"], low["margin"], low["flipped"]) == ("chosen 3", None, None)


def test_orient_custom_reward_columns_swap_too():
    ds = Dataset.from_dict(
        {"prompt": ["p"], "chosen": ["a"], "rejected": ["b"], "r_a": [0.0], "r_b": [2.0], "note": ["x"]}
    )
    proc = OrientByReward(chosen_reward_column="r_a", rejected_reward_column="r_b")
    got = ds.map(proc, batched=True, remove_columns=ds.column_names).to_list()
    assert got == [
        {
            "prompt": "p",
            "chosen": "b",
            "rejected": "a",
            "r_a": 2.0,
            "r_b": 0.0,
            "note": "x",
            "margin": 2.0,
            "flipped": True,
        }
    ]


def test_paired_columns_rule():
    names = [
        "chosen",
        "rejected",
        "chosen_score",
        "rejected_score",
        "ref_chosen_logps",
        "ref_rejected_logps",
        "chosen_only",
        "unchosen_x",
        "rejected_x",
    ]
    assert paired_columns(names) == [
        ("chosen", "rejected"),
        ("chosen_score", "rejected_score"),
        ("ref_chosen_logps", "ref_rejected_logps"),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("inf"), "expected a finite reward, found inf"),
        ("high", "expected a reward \\(a number\\), found str"),
    ],
)
def test_orient_bad_reward_is_row_error(value, message):
    batch = {
        "chosen": ["a", "b"],
        "rejected": ["c", "d"],
        "chosen_reward": [1.0, value],
        "rejected_reward": [0, 0],
    }
    with pytest.raises(RowError, match=f"row 11, column 'chosen_reward': {message}"):
        OrientByReward()(batch, [10, 11])


def test_orient_missing_columns():
    with pytest.raises(
        ColumnError, match="expected column\\(s\\) 'chosen_reward', 'rejected_reward'.*DensityRatio"
    ):
        OrientByReward()({"chosen": ["a"], "rejected": ["b"]})


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "1", True])
def test_bad_min_margin(bad):
    with pytest.raises(ConfigError, match="min_margin"):
        OrientByReward(bad)
    with pytest.raises(ConfigError, match="min_margin"):
        PairsFromRewards(min_margin=bad)


def test_processors_fingerprint_their_configuration():
    assert Hasher.hash(OrientByReward(0.5)) == Hasher.hash(OrientByReward(0.5))
    assert Hasher.hash(OrientByReward(0.5)) != Hasher.hash(OrientByReward(0.25))
    a = PairsFromRewards("best-vs-random", seed=1)
    assert Hasher.hash(a) == Hasher.hash(PairsFromRewards("best-vs-random", seed=1))
    assert Hasher.hash(a) != Hasher.hash(PairsFromRewards("best-vs-random", seed=2))


# ----------------------------------------------------------------------------------------------
# PairsFromRewards

CANDIDATES = [
    {
        "prompt": "a",
        "responses": ["r0", "r1", "r2", "r3"],
        "rewards": [0.5, 2.0, -1.0, 2.0],
        "scores": [1, 2, 3, 4],
    },
    {"prompt": "b", "responses": ["only"], "rewards": [1.0], "scores": [1]},
    {"prompt": "c", "responses": ["x", "y", "z"], "rewards": [1.0, 1.0, 1.0], "scores": [1, 2, 3]},
    # a duplicated text is considered once (its first copy)
    {"prompt": "d", "responses": ["u", "v", "u"], "rewards": [0.0, 0.2, 0.0], "scores": [0, 1, 2]},
    {"prompt": "e", "responses": ["s", "s"], "rewards": [1.0, 1.0], "scores": [0, 0]},
    {"prompt": "f", "responses": ["m", "n", "o"], "rewards": [0.3, None, 0.1], "scores": [0, 0, 0]},
]


def run_candidates(rows, processor, batch_size=1000):
    ds = Dataset.from_list(rows)
    return ds.map(
        processor,
        batched=True,
        batch_size=batch_size,
        remove_columns=ds.column_names,
        features=processor.output_features(ds.features),
    )


def test_best_vs_worst_by_hand():
    got = run_candidates(CANDIDATES[:4], PairsFromRewards()).to_list()
    # a: best is r1 (2.0, lower index than r3), worst r2; b: one response; c: all equal; d: v over u
    assert [(r["prompt"], r["chosen_index"], r["rejected_index"], r["margin"]) for r in got] == [
        ("a", 1, 2, 3.0),
        ("d", 1, 0, pytest.approx(0.2)),
    ]
    assert (got[0]["chosen"], got[0]["rejected"], got[0]["chosen_score"], got[0]["rejected_score"]) == (
        "r1",
        "r2",
        2.0,
        3.0,
    )
    assert got[0]["strategy"] == "best-vs-worst"


@pytest.mark.parametrize("mode", ["best-vs-worst", "best-vs-random"])
def test_label_pairs_candidates_counts(mode):
    pairs, report = label_pairs(Dataset.from_list(CANDIDATES), mode, batch_size=2)
    want, skipped = candidates_reference([r for r in CANDIDATES if r["prompt"] != "f"], mode)
    skipped["missing_reward"] = 1
    assert report.skipped == dict(sorted(skipped.items()))
    assert report.rows_in == 6 and report.pairs_out == len(want) == len(pairs)
    assert report.mode == mode and report.flipped is None
    assert report.seed == (0 if mode == "best-vs-random" else None)
    same_rows(pairs.to_list(), want)


def random_candidates(count, seed):
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(count):
        n = rng.randint(1, 6)
        rows.append(
            {
                "prompt": f"prompt {i}",
                "responses": [f"response {i}.{j}" for j in range(n)],
                "rewards": [float(rng.randint(-3, 3)) for _ in range(n)],
                "scores": [float(rng.random()) for _ in range(n)],
                "source_id": f"id-{i}",
                "domain": rng.choice(["chat", "safety"]),
                "responses_embedding": [[1.0, 0.0]] * n,
            }
        )
    return rows


@pytest.mark.parametrize("mode", ["best-vs-worst", "best-vs-random"])
@pytest.mark.parametrize("min_margin", [0.0, 2.0])
def test_candidates_match_reference_for_any_batch_size(mode, min_margin):
    rows = random_candidates(60, seed=7)
    want, _ = candidates_reference(rows, mode, seed=3, min_margin=min_margin)
    for batch_size in (1, 7, 1000):
        proc = PairsFromRewards(mode, min_margin=min_margin, seed=3)
        got = run_candidates(rows, proc, batch_size).to_list()
        # scalar columns and source_id are carried over; the nested embedding column is not
        for g in got:
            src = rows[int(g.pop("source_id").split("-")[1])]
            assert g.pop("domain") == src["domain"] and g["prompt"] == src["prompt"]
        same_rows(got, want)


def test_best_vs_random_is_seeded_and_spreads_over_the_others():
    rows = [
        {"prompt": f"p{i}", "responses": ["best", "a", "b", "c"], "rewards": [9.0, 1.0, 2.0, 3.0]}
        for i in range(300)
    ]
    first = run_candidates(rows, PairsFromRewards("best-vs-random", seed=0))["rejected_index"]
    again = run_candidates(rows[::-1], PairsFromRewards("best-vs-random", seed=0))["rejected_index"]
    other = run_candidates(rows, PairsFromRewards("best-vs-random", seed=1))["rejected_index"]
    assert first == again[::-1]
    assert first != other
    counts = Counter(first)
    assert set(counts) == {1, 2, 3} and min(counts.values()) > 60  # uniform: 100 each expected


def test_candidates_without_scores_and_keep_skipped():
    rows = [
        {"prompt": "p", "responses": ["a", "b"], "rewards": [1.0, 0.0]},
        {"prompt": "q", "responses": ["a", "b"], "rewards": None},
    ]
    got = run_candidates(rows, PairsFromRewards(keep_skipped=True)).to_list()
    assert [r["skip_reason"] for r in got] == [None, "missing_reward"]
    assert got[0]["chosen_score"] is None and got[0]["chosen"] == "a"
    assert got[1]["chosen"] is None and got[1]["prompt"] == "q"


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        (
            "rewards",
            [[1.0, 2.0], [1.0]],
            "row 1, column 'rewards': expected one value per response \\(2\\), found 1",
        ),
        ("scores", [[1.0, 2.0], [1.0, 2.0, 3.0]], "row 1, column 'scores': expected one value per response"),
        ("rewards", [[1.0, 2.0], [1.0, "x"]], "row 1, column 'rewards\\[1\\]': expected a reward"),
    ],
)
def test_candidates_ragged_rows_are_row_errors(column, values, message):
    batch = {"prompt": ["p", "q"], "responses": [["a", "b"], ["a", "b"]], "rewards": [[1.0, 2.0], [1.0, 2.0]]}
    batch[column] = values
    with pytest.raises(RowError, match=message):
        PairsFromRewards()(batch, [0, 1])


def test_bad_mode_and_unknown_shape():
    with pytest.raises(ConfigError, match="unknown mode 'best'.*'best-vs-worst', 'best-vs-random'"):
        PairsFromRewards("best")
    with pytest.raises(
        ColumnError, match="expected column\\(s\\) 'chosen', 'rejected'.*\\['prompt', 'text'\\]"
    ):
        label_pairs(Dataset.from_dict({"prompt": ["p"], "text": ["t"]}))


def test_label_pairs_margin_summary_matches_statistics():
    rows = random_candidates(40, seed=11)
    pairs, report = label_pairs(Dataset.from_list(rows))
    want, _ = candidates_reference(rows, "best-vs-worst")
    margins = [w["margin"] for w in want]
    assert report.margin["count"] == len(margins) == report.pairs_out
    assert report.margin["mean"] == pytest.approx(statistics.mean(margins), abs=1e-6)
    assert report.margin["median"] == pytest.approx(statistics.median(margins), abs=1e-6)
    assert report.margin["min"] == min(margins) and report.margin["max"] == max(margins)


HH_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"


@pytest.mark.slow
def test_label_pairs_on_real_hh_pairs_with_length_rewards():
    """The real HH-RLHF test pairs, rewarded by response length: counts against a plain loop."""
    from datasets import load_dataset

    from real_hub.convert import to_pairs

    pairs, _ = to_pairs(load_dataset("json", data_files=str(HH_FILE), split="train"))
    rewards = pairs.map(
        lambda b: {
            "chosen_reward": [float(len(c)) for c in b["chosen"]],
            "rejected_reward": [float(len(r)) for r in b["rejected"]],
        },
        batched=True,
    )
    labelled, report = label_pairs(rewards, min_margin=20.0)
    lengths = list(zip(rewards["chosen_reward"], rewards["rejected_reward"], strict=True))
    assert report.rows_in == len(pairs) > 2000
    assert report.skipped.get("tie", 0) == sum(a == b for a, b in lengths)
    assert report.skipped.get("abstain_low_margin", 0) == sum(0 < abs(a - b) < 20 for a, b in lengths)
    assert report.flipped == sum(b - a >= 20 for a, b in lengths)
    assert all(len(c) - len(r) >= 20 for c, r in zip(labelled["chosen"], labelled["rejected"], strict=True))
