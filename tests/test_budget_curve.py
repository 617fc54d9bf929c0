"""budget_curve and agreement_by_similarity: planted label noise, the selection, intervals, files, errors."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from datasets import Dataset
from scipy.stats import t as student_t

from real_hub import BudgetCurve, agreement_by_similarity, budget_curve, budget_filter
from real_hub.errors import ColumnError, ConfigError, MissingExtraError
from real_hub.real import budget_curve as curve_module
from real_hub.real.agreement import wilson
from real_hub.real.learner import fit_reward


def planted(n: int = 1000, dim: int = 16, *, reverse: bool = False, seed: int = 0) -> Dataset:
    """Pairs whose label is the sign of a planted linear reward, flipped with a probability set by similarity.

    Pairs below the 30th similarity percentile are clean, above the 70th pure noise (flip 0.5), linear
    between; ``reverse`` makes the dissimilar pairs the noisy ones. Two pairs per prompt.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=dim)
    a = rng.normal(size=(n, dim))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = a + rng.uniform(0.05, 1.5, size=n)[:, None] * rng.normal(size=(n, dim))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    rank = np.argsort(np.argsort(np.einsum("ij,ij->i", a, b))) / (n - 1)
    noisy = (1 - rank) if reverse else rank
    flip = rng.random(n) < np.clip((noisy - 0.3) / 0.4, 0, 1) * 0.5
    a_wins = (((a - b) @ w) > 0) ^ flip
    return Dataset.from_dict(
        {
            "prompt": [f"prompt {i // 2}" for i in range(n)],
            "chosen_embedding": np.where(a_wins[:, None], a, b).tolist(),
            "rejected_embedding": np.where(a_wins[:, None], b, a).tolist(),
        }
    )


@pytest.fixture(scope="module")
def noisy_similar():
    return planted()


# ------------------------------------------------------------------------------ acceptance: follows labels


def test_dissimilar_beats_similar_when_label_noise_grows_with_similarity(noisy_similar):
    curve = budget_curve(noisy_similar, strategies=("dissimilar", "similar"), budgets=(0.5,), splits=20)
    diff = curve.difference("dissimilar", "similar", 0.5)
    assert diff.low > 0, diff
    assert diff.mean == pytest.approx(curve.accuracy("dissimilar", 0.5) - curve.accuracy("similar", 0.5))


def test_similar_wins_when_the_noise_is_reversed():
    curve = budget_curve(
        planted(reverse=True), strategies=("dissimilar", "similar"), budgets=(0.5,), splits=20
    )
    assert curve.difference("similar", "dissimilar", 0.5).low > 0


# ------------------------------------------------------------------------------ reproducible, paired


def test_same_inputs_and_seed_give_identical_numbers_and_another_seed_other_splits(noisy_similar):
    small = noisy_similar.select(range(300))
    kwargs = {"strategies": ("dissimilar", "random", "margin_high"), "budgets": (0.25, 1.0), "splits": 3}
    a = budget_curve(small, **kwargs).to_dict()
    b = budget_curve(small, **kwargs).to_dict()
    assert json.dumps(a) == json.dumps(b)
    c = budget_curve(small, seed=1, **kwargs).to_dict()
    assert c["reference"] != a["reference"]


def test_a_strategy_scores_the_same_whatever_else_is_measured(noisy_similar):
    small = noisy_similar.select(range(300))
    alone = budget_curve(small, strategies=("random",), budgets=(0.25,), splits=3)
    together = budget_curve(small, strategies=("similar", "random", "margin_low"), budgets=(0.25,), splits=3)
    assert alone.scores["random"] == together.scores["random"]
    assert alone.reference == together.reference


def test_budget_one_is_all_pairs_for_every_strategy(noisy_similar):
    curve = budget_curve(noisy_similar.select(range(200)), strategies=("dissimilar", "similar"), splits=2)
    for strategy in ("dissimilar", "similar"):
        assert curve.scores[strategy][-1] == curve.reference
        assert curve.difference(strategy, "all", 1.0) == (0.0, 0.0, 0.0)


def test_clean_labels_with_a_margin_give_perfect_accuracy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    margin = (a - b) @ np.array([1.0, -0.5])
    keep = np.abs(margin) > 0.3  # no pair near the planted reward's boundary
    good = (margin > 0)[:, None]
    data = Dataset.from_dict(
        {
            "prompt": [str(i) for i in range(int(keep.sum()))],
            "chosen_embedding": np.where(good, a, b)[keep].tolist(),
            "rejected_embedding": np.where(good, b, a)[keep].tolist(),
        }
    )
    curve = budget_curve(data, budgets=(1.0,), splits=2)
    assert curve.reference == [1.0, 1.0]


# ------------------------------------------------------------------------------ the selection, recorded


def record_fits(monkeypatch):
    """Record every training matrix the learner is fit on, and every held-out matrix it is scored on."""
    fits, held_out = [], []

    def fit(x, **kwargs):
        fits.append(np.array(x))
        return fit_reward(x, **kwargs)

    def agrees(w, x):
        held_out.append(np.array(x))
        return x @ w > 0

    monkeypatch.setattr(curve_module, "fit_reward", fit)
    monkeypatch.setattr(curve_module, "agrees", agrees)
    return fits, held_out


def rows_of(matrix: np.ndarray, difference: np.ndarray) -> list[int]:
    """Which dataset rows a recorded matrix holds (every row's difference is unique here)."""
    distance = ((matrix[:, None, :] - difference[None, :, :]) ** 2).sum(axis=2)
    assert distance.min(axis=1).max() < 1e-10
    return sorted(distance.argmin(axis=1).tolist())


def differences(data: Dataset) -> np.ndarray:
    c = np.asarray(data["chosen_embedding"], dtype=np.float32)
    r = np.asarray(data["rejected_embedding"], dtype=np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    return c.astype(np.float64) - r.astype(np.float64)


@pytest.mark.parametrize("strategy", ["dissimilar", "similar"])
def test_each_split_is_by_prompt_and_keeps_what_budget_filter_keeps(noisy_similar, monkeypatch, strategy):
    data = noisy_similar.select(range(200))
    diff = differences(data)
    fits, held_out = record_fits(monkeypatch)
    budget_curve(data, strategies=(strategy,), budgets=(0.3,), splits=2)
    sims = np.einsum(
        "ij,ij->i",
        *(np.asarray(data[c], dtype=np.float64) for c in ("chosen_embedding", "rejected_embedding")),
    )
    prompts = np.asarray(data["prompt"])
    for split in range(2):
        train = rows_of(fits[2 * split], diff)  # the reference fit on all training pairs comes first
        test = rows_of(held_out[2 * split], diff)
        assert sorted(train + test) == list(range(len(data)))
        assert not set(prompts[train]) & set(prompts[test])
        assert abs(len(set(prompts[test])) - len(set(prompts[train]))) <= 1  # half of the prompts each
        table = Dataset.from_dict({"row": train, "similarity": sims[train].tolist()})
        kept, _ = budget_filter(table, 0.3, strategy)
        assert rows_of(fits[2 * split + 1], diff) == sorted(kept["row"])


@pytest.mark.parametrize("strategy", ["margin_high", "margin_low"])
def test_margin_rules_rank_by_a_seed_reward_and_count_the_seed_in_the_budget(
    noisy_similar, monkeypatch, strategy
):
    data = noisy_similar.select(range(400))
    diff = differences(data)
    fits, _ = record_fits(monkeypatch)
    budget_curve(data, strategies=(strategy,), budgets=(0.05, 0.5), splits=2, margin_seed=0.1)
    train = rows_of(fits[0], diff)  # split 0: all pairs, the seed part, then one fit per budget
    seed_rows = rows_of(fits[1], diff)
    assert len(seed_rows) == round(0.1 * len(train))
    small, half = rows_of(fits[2], diff), rows_of(fits[3], diff)
    assert len(small) == round(0.05 * len(train)) and set(small) < set(seed_rows)  # a share of the seed
    assert len(half) == round(0.5 * len(train)) and set(seed_rows) < set(half)
    w = fit_reward(diff[seed_rows])
    rest = [r for r in train if r not in set(seed_rows)]
    margins = diff[rest] @ w
    order = np.argsort(-margins if strategy == "margin_high" else margins, kind="stable")
    expected = set(seed_rows) | {rest[i] for i in order[: len(half) - len(seed_rows)]}
    assert set(half) == expected


def test_the_similarity_column_is_used_when_present(noisy_similar):
    data = noisy_similar.select(range(200))
    sims = np.einsum(
        "ij,ij->i",
        *(np.asarray(data[c], dtype=np.float64) for c in ("chosen_embedding", "rejected_embedding")),
    )
    kwargs = {"budgets": (0.25,), "splits": 2}
    plain = budget_curve(data, strategies=("similar",), **kwargs)
    flipped = budget_curve(
        data.add_column("similarity", (-sims).tolist()), strategies=("dissimilar",), **kwargs
    )
    assert flipped.scores["dissimilar"] == plain.scores["similar"]
    assert flipped.similarity == "similarity" and plain.similarity == "cosine of the embeddings"


def test_other_embedding_columns_can_be_named(noisy_similar):
    data = noisy_similar.select(range(200))
    renamed = data.rename_columns({"chosen_embedding": "a", "rejected_embedding": "b"})
    kwargs = {"budgets": (0.5,), "splits": 2}
    assert (
        budget_curve(renamed, embedding_columns=("a", "b"), **kwargs).scores
        == budget_curve(data, **kwargs).scores
    )


# ------------------------------------------------------------------------------ intervals, saved


def curve_of(scores: dict[str, list[list[float]]], reference: list[float], **kwargs) -> BudgetCurve:
    budgets = kwargs.pop("budgets", (0.25, 0.5, 0.75, 1.0))
    return BudgetCurve(
        strategies=tuple(scores),
        budgets=budgets,
        splits=len(reference),
        seed=0,
        scores=scores,
        reference=reference,
        train_pairs=[100] * len(reference),
        test_pairs=[80] * len(reference),
        pairs=180,
        prompts=180,
        **kwargs,
    )


@pytest.mark.parametrize("method", ["corrected", "t"])
def test_intervals_are_the_stated_t_intervals(method):
    values = [0.6, 0.62, 0.65, 0.61, 0.64]
    curve = curve_of({"random": [values] * 4}, [0.7, 0.7, 0.71, 0.69, 0.7], interval_method=method)
    n, sd = len(values), float(np.std(values, ddof=1))
    factor = 1 / n + (80 / 100 if method == "corrected" else 0)
    half = student_t.ppf(0.975, n - 1) * sd * math.sqrt(factor)
    low, high = curve.interval("random", 0.5)
    assert curve.accuracy("random", 0.5) == pytest.approx(np.mean(values))
    assert (low, high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    d = np.array(values) - np.array([0.7, 0.7, 0.71, 0.69, 0.7])
    half_d = student_t.ppf(0.975, n - 1) * np.std(d, ddof=1) * math.sqrt(factor)
    assert curve.difference("random", "all", 0.5) == pytest.approx(
        (d.mean(), d.mean() - half_d, d.mean() + half_d)
    )


def test_saved_is_the_smallest_budget_within_tolerance_from_which_on_all_are():
    ref = [0.70, 0.72, 0.71]
    # per budget 25/50/75/100%: mean differences -3, -0.5, -0.2, 0 points
    shift = {0.25: -0.03, 0.5: -0.005, 0.75: -0.002, 1.0: 0.0}
    jitter = [0.004, -0.004, 0.0]
    scores = [[r + shift[b] + j for r, j in zip(ref, jitter)] for b in (0.25, 0.5, 0.75)] + [ref]
    curve = curve_of({"dissimilar": scores}, ref, interval_method="t")
    diffs = {b: curve.difference("dissimilar", "all", b) for b in (0.25, 0.5, 0.75)}

    def expected(which):
        best = 1.0
        for b in (0.75, 0.5, 0.25):
            if diffs[b][which] < -0.01:
                break
            best = b
        return 1 - best

    saved = curve.saved("dissimilar", 0.01)
    assert saved == pytest.approx((expected(0), expected(1), expected(2)))
    assert saved.mean == pytest.approx(0.5) and saved.low <= saved.mean <= saved.high
    assert curve.saved("dissimilar", 0.05).mean == pytest.approx(0.75)
    assert curve.saved("dissimilar", 0.0).mean == 0.0


def test_an_unmeasured_budget_is_named():
    curve = curve_of({"random": [[0.5, 0.6]] * 4}, [0.6, 0.6])
    with pytest.raises(ConfigError, match=r"budget 0\.3 was not measured: expected one of 0\.25, 0\.5"):
        curve.accuracy("random", 0.3)


# ------------------------------------------------------------------------------ files


def test_save_writes_three_files_and_the_json_reads_back(noisy_similar, tmp_path):
    curve = budget_curve(noisy_similar.select(range(200)), budgets=(0.5, 1.0), splits=2)
    paths = curve.save(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "budget_curve.json",
        "budget_curve.md",
        "budget_curve.png",
    ]
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = BudgetCurve.load(paths["json"])
    assert back == curve
    text = paths["markdown"].read_text()
    cell = f"{100 * curve.accuracy('dissimilar', 0.5):.1f}"
    assert f"| 50% | {round(0.5 * np.mean(curve.train_pairs))} | {cell} [" in text
    assert "dissimilar - random" in text and "corrected resampled t-intervals" in text
    summary = curve.card_summary("dissimilar", 0.5)
    assert summary["dissimilar at 50%"].startswith(cell + " [")
    every = curve.card_summary("random")
    assert [k for k in every if k.startswith("random at")] == ["random at 50%", "random at 100%"]
    mean, low, high = curve.saved("random", 0.01)
    assert every["annotation saved within 1 point"] == f"{mean:.0%} [{low:.0%}, {high:.0%}]"


def test_plot_without_matplotlib_names_the_extra(noisy_similar, tmp_path, monkeypatch):
    curve = curve_of({"random": [[0.5, 0.6]] * 4}, [0.6, 0.6])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r"real-hub\[experiments\]"):
        curve.plot(tmp_path / "x.png")


# ------------------------------------------------------------------------------ errors


def test_missing_embedding_columns_are_named():
    data = Dataset.from_dict({"prompt": ["a", "b"], "chosen": ["x", "y"], "rejected": ["z", "w"]})
    with pytest.raises(ColumnError, match=r"'chosen_embedding', 'rejected_embedding'.*EmbedResponses"):
        budget_curve(data)
    with pytest.raises(ColumnError, match=r"'a', 'b'"):
        budget_curve(data, embedding_columns=("a", "b"))


def test_a_missing_prompt_column_is_named(noisy_similar):
    with pytest.raises(ColumnError, match=r"'prompt'.*group_column"):
        budget_curve(noisy_similar.remove_columns("prompt"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"budgets": (0.0,)}, r"budgets must be fractions in \(0, 1\]"),
        ({"budgets": (1.5,)}, r"budgets must be fractions"),
        ({"splits": 1}, r"splits must be an integer of at least 2"),
        ({"strategies": ("centroid",)}, r"unknown strategy 'centroid'"),
        ({"margin_seed": 1.0}, r"margin_seed must be a fraction in \(0, 1\)"),
        ({"interval_method": "bootstrap"}, r"interval_method must be one of"),
        ({"seed": -1}, r"seed must be a non-negative integer"),
        ({"confidence": 1.0}, r"confidence must be in \(0, 1\)"),
        ({"C": 0}, r"C must be a positive"),
        ({"budgets": (0.001,)}, r"budget 0\.001 keeps no pair of the \d+ training pairs"),
    ],
)
def test_bad_options_are_config_errors(noisy_similar, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        budget_curve(noisy_similar.select(range(40)), **kwargs)


def test_one_prompt_cannot_be_split(noisy_similar):
    one = noisy_similar.select(range(4)).map(lambda r: {"prompt": "same"})
    with pytest.raises(ConfigError, match="at least 2 prompts"):
        budget_curve(one)


# ------------------------------------------------------------------------------ label-noise view


def test_agreement_falls_with_similarity_when_noise_grows_with_it_and_rises_when_reversed(noisy_similar):
    falling = agreement_by_similarity(noisy_similar, bins=5)
    rising = agreement_by_similarity(planted(reverse=True), bins=5)
    assert falling.slope.high < 0 < rising.slope.low
    assert falling.bins[0].agreement > falling.bins[-1].agreement
    assert sum(b.pairs for b in falling.bins) == 1000
    assert falling.agreement == pytest.approx(sum(b.agreement * b.pairs for b in falling.bins) / 1000)
    sims = [b.similarity_mean for b in falling.bins]
    assert sims == sorted(sims)
    assert "| 1 | 200 |" in falling.to_markdown()


def test_wilson_interval_matches_the_textbook_values():
    assert wilson(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)


def test_atomic_files_get_the_usual_permissions_and_leave_no_temporary_file(tmp_path):
    import os

    from real_hub.atomic import atomic_path, write_text_atomic

    write_text_atomic(tmp_path / "a.md", "text")
    (tmp_path / "b.md").write_text("text")
    assert os.stat(tmp_path / "a.md").st_mode == os.stat(tmp_path / "b.md").st_mode
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "c.png") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "b.md"]
