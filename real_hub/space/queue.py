"""The annotation queue: which pair each annotator sees next, their progress, and annotator agreement.

An :class:`AnnotationQueue` holds the pair ids of one config's split, computed once, and an index of
the answers (each annotator's latest per pair) that is updated record by record. The next pair of an
annotator is found from a cursor that only moves forward (answered pairs stay answered), so a click
costs the new records only, not a re-read of every annotation file and a scan of the dataset.
:class:`AnnotationQueues` keeps one queue per loaded set and feeds them all from one
:class:`~real_hub.space.annotation.AnnotationStore`, reading only the lines appended since the last
click (this app's answers and those of other writers to the same folder).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from datasets import Dataset

from ..compat import dataset_fingerprint
from ..schema import PREFERENCE_COLUMNS
from .annotation import AnnotationStore, a_is_chosen, pair_id


def pair_ids(pairs: Dataset) -> list[str]:
    """The :func:`~real_hub.space.annotation.pair_id` of every row of ``pairs``, in order."""
    texts = pairs.select_columns(list(PREFERENCE_COLUMNS))[:]
    return [pair_id(p, c, r) for p, c, r in zip(*(texts[name] for name in PREFERENCE_COLUMNS), strict=True)]


@dataclass(frozen=True)
class QueueItem:
    """A pair to annotate: where it is, its id, its texts, and which original side is shown as A."""

    row: int
    pair_id: str
    pair: dict[str, Any]
    a_side: str

    @property
    def b_side(self) -> str:
        """The original side shown as B."""
        return "rejected" if self.a_side == "chosen" else "chosen"

    @property
    def key(self) -> str:
        """What the page holds while the pair is shown: ``"<row>:<pair id>"``."""
        return f"{self.row}:{self.pair_id}"


class AnnotationQueue:
    """The pairs of one config's split in dataset order, and who has answered which.

    Args:
        pairs: The split's pairs (``prompt``, ``chosen``, ``rejected``).
        source: The set's name as stored with each answer (a Hub id, a folder, or ``demo``).
        config: The config, as stored with each answer.
        split: The split, stored with each answer.
        seed: Seed of the A/B order (see :func:`~real_hub.space.annotation.a_is_chosen`).
        records: Answers already given; those of other sources or configs are ignored.
    """

    def __init__(
        self,
        pairs: Dataset,
        *,
        source: str,
        config: str,
        split: str = "train",
        seed: int = 0,
        records: Iterable[dict[str, Any]] = (),
    ) -> None:
        self.pairs = pairs
        self._texts = pairs.select_columns(list(PREFERENCE_COLUMNS))
        self.source, self.config, self.split, self.seed = source, config, split, seed
        self.ids = pair_ids(pairs)
        self._rows_per_id = Counter(self.ids)
        self._latest: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # pair -> annotator -> record
        self._done: dict[str, set[str]] = defaultdict(set)  # annotator -> pairs answered
        self._done_rows: Counter[str] = Counter()  # annotator -> rows of this split answered
        self._cursor: Counter[str] = Counter()  # annotator -> no row before it is unanswered
        self._same = self._compared = 0
        self._lock = threading.Lock()
        for record in records:
            self.add(record)

    def __len__(self) -> int:
        return len(self.ids)

    def accepts(self, record: dict[str, Any]) -> bool:
        """Whether ``record`` answers a pair of this queue's source and config (any split)."""
        return record.get("source") == self.source and record.get("config") == self.config

    def add(self, record: dict[str, Any]) -> bool:
        """Index one stored answer; returns whether it counted (the right set, and not older than one known).

        An annotator's latest answer per pair (by its ``time``) is the one that counts for agreement,
        as in :func:`~real_hub.space.annotation.load_annotations`; any answer, a skip included, takes the
        pair out of that annotator's queue.
        """
        if not self.accepts(record):
            return False
        pid, who = record["pair_id"], record["annotator"]
        with self._lock:
            answers = self._latest[pid]
            old = answers.get(who)
            if old is not None and str(old.get("time", "")) > str(record.get("time", "")):
                return False
            self._update_agreement(answers, who, old, record)
            answers[who] = record
            if pid not in self._done[who]:
                self._done[who].add(pid)
                self._done_rows[who] += self._rows_per_id.get(pid, 0)
        return True

    def _update_agreement(
        self, answers: dict[str, dict[str, Any]], who: str, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> None:
        """Replace ``who``'s answer in the counts of annotator pairs that agree (ties count, skips do not)."""
        before = old.get("preferred") if old is not None else None
        after = new.get("preferred")
        for other, rec in answers.items():
            theirs = rec.get("preferred")
            if other == who or theirs is None:
                continue
            if before is not None:
                self._compared -= 1
                self._same -= before == theirs
            if after is not None:
                self._compared += 1
                self._same += after == theirs

    def next(self, annotator: str) -> QueueItem | None:
        """The first pair of the split that ``annotator`` has not answered, or None when all are."""
        with self._lock:
            done = self._done[annotator]
            row = self._cursor[annotator]
            while row < len(self.ids) and self.ids[row] in done:
                row += 1
            self._cursor[annotator] = row
        return None if row == len(self.ids) else self._item(row)

    def item(self, key: str) -> QueueItem | None:
        """The pair a page's ``key`` (see :attr:`QueueItem.key`) names, or None if the split changed."""
        row_text, _, pid = key.partition(":")
        if not row_text.isdigit() or int(row_text) >= len(self.ids) or self.ids[int(row_text)] != pid:
            return None
        return self._item(int(row_text))

    def _item(self, row: int) -> QueueItem:
        pid = self.ids[row]
        return QueueItem(
            row, pid, dict(self._texts[row]), "chosen" if a_is_chosen(pid, self.seed) else "rejected"
        )

    def progress(self, annotator: str) -> tuple[int, int]:
        """``(answered, left)``: rows of the split ``annotator`` has answered, and rows still to answer."""
        with self._lock:
            done = self._done_rows[annotator]
        return done, len(self.ids) - done

    def agreement(self) -> tuple[float | None, int]:
        """Share of annotator pairs that gave the same answer on the same pair, and how many were compared.

        Equal to :func:`~real_hub.space.annotation.annotator_agreement` over this source's and config's
        records; ``None`` when no pair has two answers.
        """
        with self._lock:
            return (self._same / self._compared if self._compared else None), self._compared

    def annotators(self) -> int:
        """How many annotators have answered at least one pair of this source and config."""
        with self._lock:
            return sum(1 for pids in self._done.values() if pids)

    def answer_fields(self, item: QueueItem) -> dict[str, Any]:
        """What is stored with an answer besides the answer itself: the set, the pair's place and texts."""
        return {
            "source": self.source,
            "config": self.config,
            "split": self.split,
            "row": item.row,
            "order": [item.a_side, item.b_side],  # the original sides shown as A, B
            **item.pair,
        }


class AnnotationQueues:
    """One :class:`AnnotationQueue` per (source, config, split, dataset), fed from one store.

    Args:
        store: Where answers are appended and read back.
        seed: Seed of the A/B order.
    """

    def __init__(self, store: AnnotationStore, seed: int = 0) -> None:
        self.store = store
        self.seed = seed
        self._records: list[dict[str, Any]] = []
        self._queues: dict[tuple[str, str, str, str], AnnotationQueue] = {}
        self._lock = threading.Lock()

    def sync(self) -> None:
        """Index the answers appended to the store's folder since the last call, in every queue."""
        with self._lock:
            new = self.store.read_new()
            self._records += new
            queues = list(self._queues.values())
        for queue in queues:
            for record in new:
                queue.add(record)

    def get(self, pairs: Dataset, *, source: str, config: str, split: str) -> AnnotationQueue:
        """The queue of ``pairs`` (built on first use, from every answer read so far), up to date."""
        self.sync()
        key = (source, config, split, dataset_fingerprint(pairs) or id(pairs))
        with self._lock:
            if key not in self._queues:
                self._queues[key] = AnnotationQueue(
                    pairs, source=source, config=config, split=split, seed=self.seed, records=self._records
                )
            return self._queues[key]

    def answer(self, queue: AnnotationQueue, item: QueueItem, annotator: str, label: str) -> dict[str, Any]:
        """Append ``annotator``'s answer to ``item`` to the store and index it; returns the stored record."""
        record = self.store.append(
            pid=item.pair_id,
            annotator=annotator,
            label=label,
            a_side=item.a_side,
            extra=queue.answer_fields(item),
        )
        self.sync()
        return record
