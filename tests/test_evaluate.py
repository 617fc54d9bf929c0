"""Reward accuracy, best-of-N, and the ``real-hub eval`` command."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys

import pytest
from datasets import Dataset

from real_hub.cli.main import main
from real_hub.drsow.evaluate import AccuracyReport, BestOfNReport, best_of_n, reward_accuracy
from real_hub.errors import ColumnError, RowError
from real_hub.hub.curated import save_curated

# chosen > rejected: rows 0, 2, 5 (3 of 6); tie: rows 1, 4; wrong: row 3
PAIRS = {
    "prompt": ["p0", "p1", "p2", "p3", "p4", "p5"],
    "chosen": ["c"] * 6,
    "rejected": ["r"] * 6,
    "chosen_reward": [1.0, 0.5, -1.0, 0.0, 2.0, 3.0],
    "rejected_reward": [0.0, 0.5, -2.0, 1.0, 2.0, -3.0],
    "subset": ["chat", "chat", "safety", "safety", "safety", "reasoning"],
}

# row 0: pick 1 (gold 1), oracle 3, random 2, beats none and ties itself: 0.5/3, miss
# row 1: pick 0 (reward tie, lower index; gold 5), oracle 5, random 10/3, beats 1 ties 2: 2/3, hit
# row 2: single response: pick 0 (gold 4), oracle 4, random 4, ties itself: 1/2, hit
CANDIDATES = {
    "prompt": ["a", "b", "c"],
    "responses": [["x", "y", "z"], ["x", "y", "z"], ["x"]],
    "rewards": [[0.1, 0.9, 0.5], [2.0, 2.0, 1.0], [7.0]],
    "scores": [[3.0, 1.0, 2.0], [5.0, 5.0, 0.0], [4.0]],
}


def test_accuracy_ties_count_wrong():
    report = reward_accuracy(Dataset.from_dict(PAIRS))
    assert isinstance(report, AccuracyReport)
    assert (report.count, report.correct, report.ties, report.accuracy) == (6, 3, 2, 0.5)
    assert report.groups == []


def test_accuracy_per_group():
    report = reward_accuracy(Dataset.from_dict(PAIRS), by="subset")
    assert [g.to_dict() for g in report.groups] == [
        {"group": "chat", "count": 2, "correct": 1, "ties": 1, "scoring": "accuracy", "score": None,
         "accuracy": 0.5},
        {"group": "reasoning", "count": 1, "correct": 1, "ties": 0, "scoring": "accuracy", "score": None,
         "accuracy": 1.0},
        {"group": "safety", "count": 3, "correct": 1, "ties": 1, "scoring": "accuracy", "score": None,
         "accuracy": 1 / 3},
    ]
    assert report.to_dict()["accuracy"] == 0.5 and report.to_dict()["by"] == "subset"


def test_accuracy_matches_plain_loop_on_custom_columns():
    import random

    rng = random.Random(5)
    a = [float(rng.randint(0, 4)) for _ in range(200)]
    b = [float(rng.randint(0, 4)) for _ in range(200)]
    ds = Dataset.from_dict({"ra": a, "rb": b})
    report = reward_accuracy(ds, chosen_column="ra", rejected_column="rb")
    assert report.correct == sum(x > y for x, y in zip(a, b, strict=True))
    assert report.ties == sum(x == y for x, y in zip(a, b, strict=True))


def test_accuracy_errors_name_the_row_or_column():
    bad = dict(PAIRS, rejected_reward=[0.0, 0.5, None, 1.0, 2.0, -3.0])
    with pytest.raises(RowError, match="row 2, column 'rejected_reward': expected a number, found None"):
        reward_accuracy(Dataset.from_dict(bad))
    with pytest.raises(ColumnError, match="expected column\\(s\\) 'domain'"):
        reward_accuracy(Dataset.from_dict(PAIRS), by="domain")


# ----------------------------------------------------------------------------------------------
# RewardBench 2's best-of-N rows and Ties subset

# Focus: 1 (clear win), 1/3 (three-way tie at the top), 0 (one rejected, which wins): 4/3 of 3
# Math: 1 (three rejected), 1/2 (one rejected, tied), 0 (loses to a rejected): 3/2 of 3
RB2 = {
    "prompt": ["f0", "f1", "f2", "m0", "m1", "m2"],
    "chosen_reward": [2.0, 1.0, 0.0, 5.0, 2.0, 1.0],
    "rejected_reward": [[1.0, 0.5, 1.9], [1.0, 0.2, 1.0], [0.5], [1.0, 2.0, 3.0], [2.0], [3.0, 1.0, 1.0]],
    "subset": ["Focus", "Focus", "Focus", "Math", "Math", "Math"],
}


def test_rewardbench2_best_of_n_credit_by_hand():
    report = reward_accuracy(Dataset.from_dict(RB2), by="subset")
    assert report.format == "best-of-n"
    assert (report.count, report.ties) == (6, 2)
    assert report.correct == pytest.approx(4 / 3 + 3 / 2)
    focus, math_ = report.groups
    assert (focus.group, focus.count, focus.ties) == ("Focus", 3, 1)
    assert focus.accuracy == pytest.approx(4 / 9) and math_.accuracy == pytest.approx(1 / 2)
    assert report.mean_over_groups == pytest.approx((4 / 9 + 1 / 2) / 2)
    assert report.to_dict()["mean_over_groups"] == pytest.approx((4 / 9 + 1 / 2) / 2)
    # RewardBench 2's own columns: chosen as a list (one correct answer) gives the same credit
    listed = dict(RB2, chosen_reward=[[c] for c in RB2["chosen_reward"]])
    assert reward_accuracy(Dataset.from_dict(listed), by="subset").to_dict() == report.to_dict()


def test_pairwise_rows_keep_the_strict_rule():
    report = reward_accuracy(Dataset.from_dict({"chosen_reward": [1.0, 1.0], "rejected_reward": [1.0, 0.0]}))
    assert report.format == "pairs" and report.correct == 1 and report.ties == 1  # a pair tie earns 0


# Ties: prompt 1 is right in both forms and its correct answers are close (spread 0.1 < gap 0.9);
# prompt 2's reference is wrong and its tied answers spread (2) more than they lead (0.5).
TIES = {
    "id": ["ref:1", "tied:1", "ref:2", "tied:2", "m0"],
    "chosen_reward": [[5.0], [4.0, 3.9], [1.0], [3.0, 1.0], [1.0]],
    "rejected_reward": [[1.0, 2.0], [1.0, 3.0], [2.0], [0.5], [0.0, 0.0, 0.0]],
    "subset": ["Ties", "Ties", "Ties", "Ties", "Math"],
}


def test_rewardbench2_ties_subset_weighted_score_by_hand():
    report = reward_accuracy(Dataset.from_dict(TIES), by="subset")
    math_, ties = report.groups
    assert ties.scoring == "rewardbench2-ties" and math_.scoring == "accuracy"
    # ref accuracy 1/2, tied accuracy 2/2; preferred and preferred_hard: prompt 1 only;
    # margins: tanh(min(3, 0.9) / 0.1 - 1) and tanh(min(-1, 0.5) / 2 - 1)
    expected = 0.3 * 1.0 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0.5 + 0.01 * (math.tanh(8) + math.tanh(-1.5)) / 2
    assert ties.accuracy == pytest.approx(expected)
    assert report.mean_over_groups == pytest.approx((1.0 + expected) / 2)
    bad = dict(TIES, id=["ref:1", "t1", "ref:2", "tied:2", "m0"])
    with pytest.raises(RowError, match="row 1, column 'id': RewardBench 2's Ties subset needs ids"):
        reward_accuracy(Dataset.from_dict(bad), by="subset")


def test_cli_rewardbench2_table(tmp_path, capsys):
    path = write_jsonl(tmp_path / "rb2.jsonl", RB2)
    assert main(["eval", str(path), "--by", "subset", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "1/k credit" in out and "mean over subset" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["format"] == "best-of-n"
    assert data["mean_over_groups"] == pytest.approx((4 / 9 + 1 / 2) / 2)


def test_best_of_n_by_hand():
    report = best_of_n(Dataset.from_dict(CANDIDATES))
    assert isinstance(report, BestOfNReport)
    assert (report.prompts, report.responses) == (3, 7)
    assert report.mean_gold_picked == pytest.approx((1 + 5 + 4) / 3)
    assert report.mean_gold_oracle == pytest.approx((3 + 5 + 4) / 3)
    assert report.mean_gold_random == pytest.approx((2 + 10 / 3 + 4) / 3)
    assert report.win_rate_vs_random == pytest.approx((0.5 / 3 + 2 / 3 + 0.5) / 3)
    assert report.hit_rate == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("rewards", "scores", "message"),
    [
        (
            [[1.0], [1.0, 2.0]],
            [[1.0], [1.0]],
            "row 1, column 'scores': expected one value per reward \\(2\\)",
        ),
        ([[1.0], []], [[1.0], []], "row 1, column 'rewards': expected at least one value"),
        ([[1.0], None], [[1.0], [1.0]], "row 1, column 'rewards': expected a list of numbers, found None"),
        ([[1.0], [1.0]], [[1.0], [None]], "row 1, column 'scores\\[0\\]': expected a number, found None"),
    ],
)
def test_best_of_n_bad_rows(rewards, scores, message):
    with pytest.raises(RowError, match=message):
        best_of_n(Dataset.from_dict({"rewards": rewards, "scores": scores}))


# ----------------------------------------------------------------------------------------------
# real-hub eval


def write_jsonl(path, columns, compress=False):
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if compress:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_cli_accuracy_table_and_json(tmp_path, capsys):
    data = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    out = tmp_path / "report" / "acc.json"
    assert main(["eval", str(data), "--by", "subset", "--json", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].split() == ["subset", "count", "correct", "ties", "accuracy"]
    assert lines[2].split() == ["chat", "2", "1", "1", "0.500"]
    assert lines[4].split() == ["safety", "3", "1", "1", "0.333"]
    assert lines[5].split() == ["all", "6", "3", "2", "0.500"]
    written = json.loads(out.read_text())
    assert written["accuracy"] == 0.5 and written["count"] == 6 and written["ties"] == 2
    assert [g["group"] for g in written["groups"]] == ["chat", "reasoning", "safety"]


def test_cli_best_of_n_from_gzipped_jsonl(tmp_path, capsys):
    data = write_jsonl(tmp_path / "cands.jsonl.gz", CANDIDATES, compress=True)
    out = tmp_path / "bon.json"
    assert main(["eval", str(data), "--json", str(out), "-q"]) == 0
    assert "best-of-N over 3 prompts, 7 responses" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written["metric"] == "best_of_n"
    assert written["hit_rate"] == pytest.approx(2 / 3)
    assert written["mean_gold_picked"] == pytest.approx(10 / 3)


def test_cli_curated_folder_and_parquet(tmp_path, capsys):
    ds = Dataset.from_dict(PAIRS)
    save_curated(ds, tmp_path / "curated", "scored")
    assert main(["eval", str(tmp_path / "curated"), "--config", "scored", "-q"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split() == ["all", "6", "3", "2", "0.500"]
    ds.to_parquet(str(tmp_path / "a.parquet"))
    ds.select([0, 1]).to_parquet(str(tmp_path / "b.parquet"))  # two files: 8 pairs, 4 correct, 3 ties
    assert main(["eval", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"), "-q"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split() == ["all", "8", "4", "3", "0.500"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "error: no such file: .*nope.jsonl"),
        ("corrupt", "error: could not load .*bad.parquet"),
        ("columns", "error: expected column\\(s\\) 'chosen_reward', 'rejected_reward'.*--rewards-column"),
        ("row", "error: row 1, column 'rejected_reward': expected a number, found None"),
        ("format", "error: cannot tell the format of"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, setup, message):
    if setup == "missing":
        data = [str(tmp_path / "nope.jsonl")]
    elif setup == "corrupt":
        (tmp_path / "bad.parquet").write_bytes(b"not a parquet file")
        data = [str(tmp_path / "bad.parquet")]
    elif setup == "columns":
        data = [str(write_jsonl(tmp_path / "x.jsonl", {"prompt": ["p"], "chosen": ["c"]}))]
    elif setup == "row":
        cols = {"chosen_reward": [1.0, 2.0], "rejected_reward": [0.0, None]}
        data = [str(write_jsonl(tmp_path / "x.jsonl", cols))]
    else:
        write_jsonl(tmp_path / "x.jsonl", PAIRS)
        (tmp_path / "y.parquet").write_bytes(b"")
        data = [str(tmp_path / "x.jsonl"), str(tmp_path / "y.parquet")]
    assert main(["eval", *data, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    import re

    assert re.match(message, err), err


def test_cli_help_and_subprocess_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "real_hub.cli.main", "eval", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "examples:" in done.stdout and "--gold-column" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "real_hub.cli.main", "eval", str(tmp_path / "missing.parquet")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: no such file:")
    assert "Traceback" not in bad.stderr
