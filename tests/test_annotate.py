"""Annotations: append-only storage, orientation, and load_annotations' preference rows and report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from datasets import Dataset

from real_hub import AnnotationReport, AnnotationStore, load_annotations
from real_hub.errors import ConfigError, FormatError
from real_hub.space.annotation import a_is_chosen, annotation_scheduler, pair_id, preferred_side

PAIRS = Dataset.from_dict(
    {
        "prompt": ["p0", "p1", "p2", "p3"],
        "chosen": ["c0", "c1", "c2", "c3"],
        "rejected": ["r0", "r1", "r2", "r3"],
    }
)
IDS = [pair_id(r["prompt"], r["chosen"], r["rejected"]) for r in PAIRS]


def put(store: AnnotationStore, k: int, annotator: str, label: str, a_side: str = "chosen") -> dict:
    row = PAIRS[k]
    return store.append(pid=IDS[k], annotator=annotator, label=label, a_side=a_side, extra=dict(row))


def test_preferred_side_follows_the_order_shown():
    assert preferred_side("A", "chosen") == "chosen"
    assert preferred_side("A", "rejected") == "rejected"
    assert preferred_side("B", "chosen") == "rejected"
    assert preferred_side("B", "rejected") == "chosen"
    assert preferred_side("tie", "chosen") == "tie"
    assert preferred_side("skip", "rejected") is None


def test_order_is_seeded_per_pair_and_balanced():
    ids = [f"{i:016x}" for i in range(2000)]
    first = [a_is_chosen(i, seed=3) for i in ids]
    assert first == [a_is_chosen(i, seed=3) for i in ids]
    assert first != [a_is_chosen(i, seed=4) for i in ids]
    assert 0.45 < sum(first) / len(first) < 0.55


def test_labels_are_appended_never_overwritten(tmp_path):
    store = AnnotationStore(tmp_path, session="s1")
    put(store, 0, "ann", "A")
    put(store, 0, "ann", "B")  # a change of mind is a new line
    other = AnnotationStore(tmp_path, session="s2")
    put(other, 0, "bob", "A")
    lines = (tmp_path / "labels-s1.jsonl").read_text().splitlines()
    assert [json.loads(x)["label"] for x in lines] == ["A", "B"]
    assert [r["annotator"] for r in store.records()] == ["ann", "ann", "bob"]
    rec = json.loads(lines[0])
    assert rec["pair_id"] == IDS[0] and rec["a_side"] == "chosen" and rec["preferred"] == "chosen"
    assert rec["time"].endswith("+00:00")


def test_bad_labels_are_refused(tmp_path):
    store = AnnotationStore(tmp_path)
    with pytest.raises(ConfigError, match="annotator name"):
        put(store, 0, "  ", "A")
    with pytest.raises(ConfigError, match="label must be one of"):
        put(store, 0, "ann", "C")
    assert not store.path.exists()


def test_load_annotations_orients_by_the_label_and_counts_the_rest(tmp_path):
    store = AnnotationStore(tmp_path)
    put(store, 0, "ann", "A", a_side="rejected")  # ann prefers the original rejected r0
    put(store, 1, "ann", "B", a_side="rejected")  # B = chosen c1
    put(store, 2, "ann", "tie")
    put(store, 3, "ann", "A", a_side="chosen")  # original orientation
    put(store, 3, "bob", "B", a_side="rejected")  # bob agrees: B shown was the chosen
    put(store, 1, "bob", "skip")
    (tmp_path / "broken.jsonl").write_text("not json\n")
    rows, report = load_annotations(tmp_path)
    assert rows["prompt"] == ["p0", "p1", "p3"]
    assert rows["chosen"] == ["r0", "c1", "c3"]
    assert rows["rejected"] == ["c0", "r1", "r3"]
    assert rows["votes"] == [1, 1, 2]
    assert rows["agrees_with_original"] == [False, True, True]
    assert isinstance(report, AnnotationReport)
    assert report.labels == 6 and report.unreadable_lines == 1
    assert report.annotators == ["ann", "bob"]
    assert (report.pairs_labelled, report.rows_out, report.ties, report.skipped, report.conflicts) == (
        4,
        3,
        1,
        0,
        0,
    )
    # decisive answers: r0 (disagree), c1, c3, c3 -> 3 of 4 prefer the original chosen
    assert report.original_compared == 4 and report.original_agreement == pytest.approx(3 / 4)
    # only pair 3 has two answers (pair 1's second is a skip): they agree
    assert report.annotator_pairs_compared == 1 and report.annotator_agreement == 1.0


def test_plain_and_conversational_labels_become_one_conversational_set(tmp_path):
    store = AnnotationStore(tmp_path)
    put(store, 0, "ann", "B")
    turns = {
        "prompt": [{"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "hello!"}],
        "rejected": [{"role": "assistant", "content": "go away"}],
    }
    pid = pair_id(turns["prompt"], turns["chosen"], turns["rejected"])
    store.append(pid=pid, annotator="ann", label="A", a_side="chosen", extra=turns)
    rows, _ = load_annotations(tmp_path)
    assert rows["prompt"] == [[{"role": "user", "content": "p0"}], turns["prompt"]]
    assert rows["chosen"] == [[{"role": "assistant", "content": "r0"}], turns["chosen"]]
    assert rows["rejected"] == [[{"role": "assistant", "content": "c0"}], turns["rejected"]]


def test_disagreement_is_a_conflict_and_the_latest_label_counts(tmp_path):
    store = AnnotationStore(tmp_path)
    put(store, 0, "ann", "A")
    put(store, 0, "bob", "B")
    put(store, 1, "ann", "A")
    put(store, 1, "ann", "B")  # changed mind: only B counts
    put(store, 2, "ann", "skip")
    rows, report = load_annotations(tmp_path)
    assert rows["chosen"] == ["r1"] and rows["rejected"] == ["c1"]
    assert report.conflicts == 1 and report.skipped == 1 and report.rows_out == 1
    assert report.annotator_pairs_compared == 1 and report.annotator_agreement == 0.0


def test_with_pairs_texts_come_from_the_pairs_and_strangers_are_counted(tmp_path):
    store = AnnotationStore(tmp_path)
    store.append(pid=IDS[2], annotator="ann", label="B", a_side="chosen")  # no texts stored
    store.append(pid="0123456789abcdef", annotator="ann", label="A", a_side="chosen")
    rows, report = load_annotations(tmp_path, PAIRS)
    assert rows.to_list() == [
        {
            "prompt": "p2",
            "chosen": "r2",
            "rejected": "c2",
            "pair_id": IDS[2],
            "votes": 1,
            "agrees_with_original": False,
        }
    ]
    assert report.unmatched == 1
    with pytest.raises(FormatError, match="chosen"):
        load_annotations(tmp_path, PAIRS.remove_columns("chosen"))
    with pytest.raises(ConfigError, match="no label folder"):
        load_annotations(tmp_path / "missing")


def test_scheduler_is_made_only_when_a_labels_repo_is_set(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("REAL_HUB_LABELS_REPO", raising=False)
    assert annotation_scheduler(tmp_path) is None
    made = {}

    class FakeScheduler:
        def __init__(self, **kwargs):
            made.update(kwargs)
            import threading

            self.lock = threading.Lock()

    monkeypatch.setattr(huggingface_hub, "CommitScheduler", FakeScheduler)
    monkeypatch.setenv("REAL_HUB_LABELS_REPO", "me/labels")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    sched = annotation_scheduler(tmp_path, every=2)
    assert made == {
        "repo_id": "me/labels",
        "repo_type": "dataset",
        "folder_path": tmp_path,
        "path_in_repo": "labels",
        "every": 2,
        "private": True,
        "allow_patterns": ["*.jsonl"],
        "token": "hf_test",
    }
    store = AnnotationStore(tmp_path, scheduler=sched)
    assert store._lock is sched.lock
    put(store, 0, "ann", "A")
    assert len(store.records()) == 1


def test_labels_reach_a_dataset_repo_through_a_real_commit_scheduler(tmp_path, monkeypatch, hub):
    """The real ``CommitScheduler`` over HTTP: labels appended locally arrive in the private labels repo."""
    from conftest import HUB_TOKEN, HUB_USER
    from huggingface_hub import HfApi, snapshot_download

    repo = f"{HUB_USER}/space-labels"
    monkeypatch.setenv("REAL_HUB_LABELS_REPO", repo)
    local = tmp_path / "labels"
    sched = annotation_scheduler(local, every=60)  # the scheduler pushes once on start, then hourly
    api = HfApi(token=HUB_TOKEN)

    def remote_lines() -> int:
        path = api.hf_hub_download(
            repo, "labels/labels-s1.jsonl", repo_type="dataset", local_dir=tmp_path / "r"
        )
        return len(Path(path).read_text().splitlines())

    try:
        for _ in range(500):  # the start-up push (of an empty folder) is done before any label exists
            if getattr(sched, "last_future", None) is not None:
                break
            time.sleep(0.01)
        assert sched.last_future.result() is None
        store = AnnotationStore(local, session="s1", scheduler=sched)
        put(store, 0, "ann", "A")
        put(store, 1, "ann", "B", a_side="rejected")
        assert sched.trigger().result() is not None
        assert remote_lines() == 2
        put(store, 2, "ann", "tie")
        put(store, 3, "ann", "A", a_side="rejected")
        assert sched.trigger().result() is not None
        assert remote_lines() == 4
        assert sched.trigger().result() is None  # nothing changed since: no empty commit
    finally:
        sched.stop()

    assert api.repo_info(repo, repo_type="dataset").private
    assert [f for f in api.list_repo_files(repo, repo_type="dataset") if f.startswith("labels/")] == [
        "labels/labels-s1.jsonl"
    ]
    remote = Path(snapshot_download(repo, repo_type="dataset", local_dir=tmp_path / "remote"))
    assert (remote / "labels" / "labels-s1.jsonl").read_bytes() == store.path.read_bytes()
    got, report = load_annotations(remote / "labels")
    want, _ = load_annotations(local)
    assert got.to_list() == want.to_list()
    assert len(got) == 3 and report.ties == 1  # the tie is counted, not emitted
    assert got["chosen"] == ["c0", "c1", "r3"]  # orientation of A/B as shown: see `put`'s a_side
