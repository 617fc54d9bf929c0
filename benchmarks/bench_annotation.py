"""Benchmark one annotation click in the Space: the in-memory queue against the re-read-and-scan it replaced.

Usage:
    python benchmarks/bench_annotation.py                       # 100,000 pairs; 100, 1,000, 5,000 answers
    python benchmarks/bench_annotation.py --pairs 20000 --answers 100 1000 --json out.json

A click shows the annotator's next unanswered pair with their progress and the annotators' agreement.
The folder holds ``answers`` answers by the annotator (the first rows, in order) and as many by a second
annotator, in two session files, as the Space writes them. Variants, timed for the same click:

    rescan   what the Space did before: read every annotation file, keep this set's records, compute
             the agreement, then walk the dataset from row 0 computing each pair's id until one is
             unanswered (the code of the old ``annotation`` handler, kept here as the baseline).
    queue    ``AnnotationQueues.get`` (reads only lines appended since the last click: none here) and
             the queue's ``next``, ``progress`` and ``agreement`` (an index updated per answer).

Also reported: building the queue once per loaded set (the pair ids of every row). Each figure is the
median of ``--runs`` clicks.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets import Dataset  # noqa: E402

from real_hub.atomic import write_json_atomic  # noqa: E402
from real_hub.space.annotation import (  # noqa: E402
    AnnotationStore,
    a_is_chosen,
    annotator_agreement,
    pair_id,
)
from real_hub.space.queue import AnnotationQueues  # noqa: E402

SOURCE, CONFIG = "bench", "dissimilar"


def build_pairs(n: int) -> Dataset:
    return Dataset.from_dict(
        {
            "prompt": [
                f"question {i}: how would you explain topic {i % 97} to a newcomer?" for i in range(n)
            ],
            "chosen": [
                f"a careful answer number {i} that walks through the idea step by step" for i in range(n)
            ],
            "rejected": [f"a short answer number {i}" for i in range(n)],
            "similarity": [((i * 7919) % 1000) / 1000 for i in range(n)],
        }
    )


def fill(folder: Path, pairs: Dataset, answers: int) -> None:
    texts = pairs.select(range(answers)).to_dict()
    for who, session in (("ann", "s1"), ("bob", "s2")):
        store = AnnotationStore(folder, session=session)
        for k in range(answers):
            pair = {c: texts[c][k] for c in ("prompt", "chosen", "rejected")}
            pid = pair_id(**pair)
            extra = {"source": SOURCE, "config": CONFIG, "split": "train", "row": k, **pair}
            store.append(pid=pid, annotator=who, label="A" if k % 3 else "B", a_side="chosen", extra=extra)


def rescan_click(store: AnnotationStore, ds: Dataset, annotator: str) -> int:
    """The old handler: every file re-read, the set scanned row by row from the start."""
    records = [r for r in store.records() if r.get("config") == CONFIG and r.get("source") == SOURCE]
    mine = {r["pair_id"] for r in records if r["annotator"] == annotator}
    annotator_agreement(records)
    for row in range(len(ds)):
        item = ds[row]
        pid = pair_id(item["prompt"], item["chosen"], item["rejected"])
        if pid not in mine:
            a_is_chosen(pid, 0)
            return row
    return -1


def queue_click(queues: AnnotationQueues, ds: Dataset, annotator: str) -> int:
    q = queues.get(ds, source=SOURCE, config=CONFIG, split="train")
    item = q.next(annotator)
    q.progress(annotator)
    q.agreement()
    return item.row if item is not None else -1


def median_time(fn, *args: object, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--answers", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    pairs = build_pairs(args.pairs)
    results = []
    for answers in args.answers:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            fill(folder, pairs, answers)
            store = AnnotationStore(folder, session="app")
            queues = AnnotationQueues(store)
            start = time.perf_counter()
            queues.get(pairs, source=SOURCE, config=CONFIG, split="train")
            build = time.perf_counter() - start
            old, old_row = median_time(rescan_click, store, pairs, "ann", runs=args.runs)
            new, new_row = median_time(queue_click, queues, pairs, "ann", runs=args.runs)
            assert old_row == new_row == answers, (old_row, new_row, answers)
            results.append(
                {
                    "pairs": args.pairs,
                    "answers": answers,
                    "rescan_s": old,
                    "queue_s": new,
                    "queue_build_s": build,
                }
            )
            print(
                f"{args.pairs} pairs, {answers} answers each by 2 annotators: rescan {old * 1e3:.1f} ms, "
                f"queue {new * 1e3:.3f} ms per click ({old / new:.0f}x); queue built once in {build:.2f} s"
            )
    report = {"machine": platform.platform(), "python": platform.python_version(), "results": results}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json, report, indent=2)


if __name__ == "__main__":
    main()
