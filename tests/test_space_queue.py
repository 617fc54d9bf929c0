"""The annotation queue: next pair per annotator, progress and agreement from an index updated per answer."""

from __future__ import annotations

import itertools
import random

import pytest
from datasets import Dataset

from real_hub.space import queue as queue_module
from real_hub.space.annotation import AnnotationStore, a_is_chosen, pair_id, preferred_side
from real_hub.space.queue import AnnotationQueue, AnnotationQueues, pair_ids

N = 12
PAIRS = Dataset.from_dict(
    {
        "prompt": [f"p{i}" for i in range(N)],
        "chosen": [f"c{i}" for i in range(N)],
        "rejected": [f"r{i}" for i in range(N)],
        "similarity": [i / N for i in range(N)],
    }
)
IDS = [pair_id(f"p{i}", f"c{i}", f"r{i}") for i in range(N)]


def record(k: int, who: str, label: str, time: str, *, source: str = "s", config: str = "dissimilar") -> dict:
    """A stored answer to pair ``k`` as the store writes it (A shown as the original chosen)."""
    return {
        "pair_id": IDS[k],
        "annotator": who,
        "label": label,
        "a_side": "chosen",
        "preferred": preferred_side(label, "chosen"),
        "time": time,
        "source": source,
        "config": config,
    }


def make(records=()) -> AnnotationQueue:
    return AnnotationQueue(PAIRS, source="s", config="dissimilar", split="train", records=records)


def brute_agreement(records: list[dict]) -> tuple[float | None, int]:
    """Agreement over each annotator's latest answer per pair, by plain loops (ties count, skips do not)."""
    latest: dict[tuple[str, str], dict] = {}
    for rec in sorted(records, key=lambda r: r["time"]):
        latest[(rec["pair_id"], rec["annotator"])] = rec
    same = total = 0
    for pid in {p for p, _ in latest}:
        answers = [r["preferred"] for (p, _), r in latest.items() if p == pid and r["preferred"] is not None]
        for x, y in itertools.combinations(answers, 2):
            total += 1
            same += x == y
    return (same / total if total else None), total


def test_pair_ids_are_the_ids_of_each_row():
    assert pair_ids(PAIRS) == IDS


def test_next_pair_follows_the_set_and_skips_what_was_answered():
    q = make()
    item = q.next("ann")
    assert (item.row, item.pair_id, item.pair) == (
        0,
        IDS[0],
        {"prompt": "p0", "chosen": "c0", "rejected": "r0"},
    )
    assert item.a_side == ("chosen" if a_is_chosen(IDS[0]) else "rejected") and item.b_side != item.a_side
    for t, k in enumerate((0, 1, 3)):
        assert q.add(record(k, "ann", "skip" if k == 1 else "A", f"2026-01-01T00:00:0{t}"))
    assert q.next("ann").row == 2
    assert q.progress("ann") == (3, N - 3)
    assert q.next("bob").row == 0 and q.progress("bob") == (0, N)  # each annotator has their own queue
    q.add(record(2, "ann", "B", "2026-01-01T00:00:09"))
    assert q.next("ann").row == 4
    for k in range(4, N):
        q.add(record(k, "ann", "tie", f"2026-01-02T00:00:{k:02d}"))
    assert q.next("ann") is None and q.progress("ann") == (N, 0)


def test_answers_of_other_sets_are_ignored():
    q = make([record(0, "ann", "A", "t1", source="other"), record(1, "ann", "A", "t1", config="similar")])
    assert q.next("ann").row == 0 and q.progress("ann") == (0, N) and q.annotators() == 0


def test_a_repeated_pair_counts_on_every_row_it_holds():
    doubled = Dataset.from_dict({k: v + v[:1] for k, v in PAIRS.to_dict().items()})  # row N repeats row 0
    q = AnnotationQueue(doubled, source="s", config="dissimilar")
    q.add(record(0, "ann", "A", "t1"))
    assert q.progress("ann") == (2, N - 1)


def test_agreement_follows_each_annotators_latest_answer():
    rng = random.Random(0)
    records, q = [], make()
    for t in range(300):
        rec = record(rng.randrange(5), rng.choice("abcd"), rng.choice(["A", "B", "tie", "skip"]), f"{t:05d}")
        records.append(rec)
        q.add(rec)
        assert q.agreement() == pytest.approx(brute_agreement(records))
    assert q.annotators() == 4


def test_an_older_answer_read_late_does_not_replace_a_newer_one():
    q = make([record(0, "ann", "A", "0002"), record(0, "bob", "A", "0001")])
    assert q.agreement() == (1.0, 1)
    assert not q.add(record(0, "ann", "B", "0000"))  # written before ann's A, read after it
    assert q.agreement() == (1.0, 1)
    assert q.add(record(0, "ann", "B", "0003"))  # a change of mind
    assert q.agreement() == (0.0, 1)


def test_a_key_names_its_pair_until_the_set_changes():
    q = make()
    item = q.next("ann")
    assert q.item(item.key) == item
    assert q.item(f"1:{IDS[0]}") is None and q.item("x:y") is None and q.item(f"{N}:{IDS[0]}") is None


def test_queues_read_only_new_lines_and_see_other_writers(tmp_path, monkeypatch):
    store = AnnotationStore(tmp_path, session="app")
    queues = AnnotationQueues(store)
    q = queues.get(PAIRS, source="s", config="dissimilar", split="train")
    assert queues.get(PAIRS, source="s", config="dissimilar", split="train") is q
    calls = []
    monkeypatch.setattr(queue_module, "pair_id", lambda *a: calls.append(a))  # the ids are computed once
    for _ in range(3):
        queues.answer(q, q.next("ann"), "ann", "A")
    assert q.next("ann").row == 3 and q.progress("ann") == (3, N - 3) and calls == []
    monkeypatch.undo()
    other = AnnotationStore(tmp_path, session="replica")  # another process writing to the same folder
    other.append(
        pid=IDS[3], annotator="ann", label="B", a_side="chosen", extra={"source": "s", "config": "dissimilar"}
    )
    with (tmp_path / "labels-replica.jsonl").open("a") as fh:
        fh.write('{"pair_id": "half a line')  # still being written: read once complete
    queues.sync()
    assert q.next("ann").row == 4
    assert len(store.read_new()) == 0  # nothing new since the queues' last read
    with (tmp_path / "labels-replica.jsonl").open("a") as fh:
        fh.write('", "annotator": "bob", "label": "A", "a_side": "chosen", ')
        fh.write('"source": "s", "config": "dissimilar"}\n')
    queues.sync()
    assert q.annotators() == 2 and q.progress("bob") == (0, N)  # bob's answer is to an unknown pair
    late = queues.get(PAIRS.select(range(6)), source="s", config="dissimilar", split="train")
    assert late is not q and late.progress("ann") == (4, 2)  # a queue built later starts from every answer
    stored = [r for r in store.records() if r.get("session") == "app"]
    assert [r["row"] for r in stored] == [0, 1, 2] and {r["split"] for r in stored} == {"train"}
    assert all(
        r["order"] == [r["a_side"], "rejected" if r["a_side"] == "chosen" else "chosen"] for r in stored
    )
