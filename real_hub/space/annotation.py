"""Human annotations of selected pairs: append-only storage, and turning them into a preference set.

The Space's annotation mode shows a pair's two responses as A and B in a seeded random order and
stores one JSON line per decision: the pair, the annotator, the time, which original side was shown
as A, and the label (``A``, ``B``, ``tie`` or ``skip``). Lines are only ever appended, one file per
app session, so two annotators (or two Space replicas) never write the same file; a later answer of the
same annotator for the same pair supersedes the earlier one when read. :func:`load_annotations` turns
the folder into TRL preference rows.

"Annotation" is a human's answer here; Dr.SoW's model-made preferences are "labels" (``drsow/label.py``).
The file names (``labels-<session>.jsonl``), the record fields and the environment variables
(``REAL_HUB_LABELS_DIR``, ``REAL_HUB_LABELS_REPO``) keep their first names, so existing annotation
folders and Space settings still work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..atomic import append_line
from ..errors import ConfigError, FormatError
from ..schema import PREFERENCE_COLUMNS

logger = logging.getLogger(__name__)

ANSWERS = ("A", "B", "tie", "skip")
"""What an annotator can answer: A or B is better, a tie, or skip the pair."""
ANNOTATIONS_REPO_ENV = "REAL_HUB_LABELS_REPO"
ANNOTATIONS_DIR_ENV = "REAL_HUB_LABELS_DIR"
ANNOTATIONS_EVERY_ENV = "REAL_HUB_LABELS_EVERY"
_REQUIRED = frozenset({"pair_id", "annotator", "label", "a_side"})


def pair_id(prompt: Any, chosen: Any, rejected: Any) -> str:
    """A stable id of a pair from its texts (conversations included), independent of where it is stored."""
    blob = json.dumps([prompt, chosen, rejected], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def a_is_chosen(pid: str, seed: int = 0) -> bool:
    """Whether the pair's original ``chosen`` response is shown as A (a seeded coin per pair)."""
    return random.Random(f"{seed}:{pid}").random() < 0.5


def preferred_side(label: str, a_side: str) -> str | None:
    """The original side (``chosen``/``rejected``) an answer prefers, ``"tie"``, or ``None`` for a skip."""
    if label == "A":
        return a_side
    if label == "B":
        return "rejected" if a_side == "chosen" else "chosen"
    return "tie" if label == "tie" else None


class AnnotationStore:
    """An append-only folder of JSON-lines annotation files; this store writes ``labels-<session>.jsonl``.

    Args:
        folder: Where the annotation files live (created if missing).
        session: This writer's file name part (default: a fresh random id).
        scheduler: A ``huggingface_hub.CommitScheduler`` pushing ``folder``; writes take its lock.
    """

    def __init__(self, folder: str | Path, *, session: str | None = None, scheduler: Any = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.session = session or uuid.uuid4().hex[:12]
        self.path = self.folder / f"labels-{self.session}.jsonl"
        self.scheduler = scheduler
        self._lock = scheduler.lock if scheduler is not None else threading.Lock()
        self._offsets: dict[Path, int] = {}
        self._read_lock = threading.Lock()

    def append(
        self, *, pid: str, annotator: str, label: str, a_side: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Append one decision and return the stored record."""
        annotator = annotator.strip()
        if not annotator:
            raise ConfigError("enter an annotator name before labelling")
        if label not in ANSWERS:
            raise ConfigError(f"label must be one of {ANSWERS}, got {label!r}")
        if a_side not in ("chosen", "rejected"):
            raise ConfigError(f"a_side must be 'chosen' or 'rejected', got {a_side!r}")
        record = {
            "pair_id": pid,
            "annotator": annotator,
            "label": label,
            "a_side": a_side,
            "preferred": preferred_side(label, a_side),
            "time": datetime.now(timezone.utc).isoformat(),
            "session": self.session,
            **(extra or {}),
        }
        with self._lock:  # a line torn by a killed writer is closed first: the new record stays whole
            append_line(self.path, json.dumps(record, ensure_ascii=False))
        logger.debug("Annotation %s by %s for pair %s", label, annotator, pid)
        return record

    def records(self) -> list[dict[str, Any]]:
        """Every record in the folder (all sessions), oldest first."""
        return read_records(self.folder)[0]

    def read_new(self) -> list[dict[str, Any]]:
        """The records appended to the folder's files since the previous call (by any writer), in file order.

        Each file is read from where the previous call stopped, so a call costs the new lines only; a
        line still being written waits for the next call. The first call returns every record.
        """
        new = []
        with self._read_lock:
            for path in sorted(self.folder.glob("*.jsonl")):
                start = self._offsets.get(path, 0)
                size = path.stat().st_size
                if size <= start:
                    continue
                with path.open("rb") as fh:
                    fh.seek(start)
                    chunk = fh.read(size - start)
                end = chunk.rfind(b"\n") + 1
                self._offsets[path] = start + end
                for line in chunk[:end].decode("utf-8", errors="replace").splitlines():
                    rec = _parse(line, f"{path.name} (after byte {start})") if line.strip() else None
                    if rec is not None:
                        new.append(rec)
        return new


def _parse(line: str, where: str) -> dict[str, Any] | None:
    """The record on a non-blank line; ``None`` (and a warning) if it holds none."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        rec = None
    if not isinstance(rec, dict) or not _REQUIRED <= rec.keys():
        logger.warning("Skipping unreadable annotation line %s", where)
        return None
    return rec


def read_records(folder: str | Path) -> tuple[list[dict[str, Any]], int]:
    """All annotation records of a folder, oldest first, and the number of unreadable lines (skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"no label folder at {folder}")
    records, bad = [], 0
    for path in sorted(folder.glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            rec = _parse(line, f"{path.name}:{n}")
            if rec is None:
                bad += 1
            else:
                records.append(rec)
    records.sort(key=lambda r: str(r.get("time", "")))
    return records, bad


def latest_annotations(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each annotator's last record per pair: ``(pair_id, annotator) -> record``."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        out[(rec["pair_id"], rec["annotator"])] = rec
    return out


def annotator_agreement(records: list[dict[str, Any]]) -> tuple[float | None, int]:
    """Share of annotator pairs that gave the same answer on the same pair (ties count, skips do not).

    Returns the agreement (``None`` when no pair has two answers) and how many annotator pairs were compared.
    """
    by_pair: dict[str, list[str]] = defaultdict(list)
    for (pid, _), rec in latest_annotations(records).items():
        if rec.get("preferred") is not None:
            by_pair[pid].append(rec["preferred"])
    same = total = 0
    for answers in by_pair.values():
        for x, y in combinations(answers, 2):
            total += 1
            same += x == y
    return (same / total if total else None), total


@dataclass
class AnnotationReport:
    """What an annotation folder held and how it became preference rows."""

    labels: int = 0
    """Records read (every decision, superseded ones included)."""
    annotators: list[str] = field(default_factory=list)
    pairs_labelled: int = 0
    rows_out: int = 0
    ties: int = 0
    """Pairs whose answers were all ties (not emitted)."""
    skipped: int = 0
    """Pairs only ever skipped (not emitted)."""
    conflicts: int = 0
    """Pairs whose annotators split evenly between the two sides (not emitted)."""
    unmatched: int = 0
    """Labelled pairs not found in the ``pairs`` given (not emitted)."""
    unreadable_lines: int = 0
    original_agreement: float | None = None
    """Share of decisive answers that prefer the pair's original ``chosen`` response."""
    original_compared: int = 0
    annotator_agreement: float | None = None
    annotator_pairs_compared: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The report as a plain dict."""
        return asdict(self)


def load_annotations(folder: str | Path, pairs: Dataset | None = None) -> tuple[Dataset, AnnotationReport]:
    """Turn an annotation folder into a TRL preference set (``prompt``/``chosen``/``rejected`` as answered).

    Each annotator's latest answer per pair counts once; a pair is emitted oriented by the majority of
    decisive answers (A/B), with ``votes`` and ``agrees_with_original`` columns. Pairs with only
    ties, only skips, or an even split are counted in the report, not emitted. When plain and
    conversational pairs mix, plain texts become one-turn conversations (a column has one type).

    Args:
        folder: The annotation folder the Space writes (``REAL_HUB_LABELS_DIR``).
        pairs: The annotated pairs; when given, texts come from it (matched by :func:`pair_id`) and
            answers to pairs not in it are counted as ``unmatched``. Without it, the texts stored with
            each answer are used.

    Returns:
        The preference rows and an :class:`AnnotationReport`.
    """
    records, bad = read_records(folder)
    report = AnnotationReport(labels=len(records), unreadable_lines=bad)
    report.annotators = sorted({r["annotator"] for r in records})
    known: dict[str, dict[str, Any]] | None = None
    if pairs is not None:
        missing = [c for c in PREFERENCE_COLUMNS if c not in pairs.column_names]
        if missing:
            raise FormatError(f"pairs lack column(s) {missing}; they have {pairs.column_names}")
        known = {}
        for row in pairs.select_columns(list(PREFERENCE_COLUMNS)):
            known[pair_id(row["prompt"], row["chosen"], row["rejected"])] = row
    latest = latest_annotations(records)
    answers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (pid, _), rec in latest.items():
        answers[pid].append(rec)
    report.pairs_labelled = len(answers)
    decisive = agreeing = 0
    rows: dict[str, list] = {"prompt": [], "chosen": [], "rejected": [], "pair_id": [], "votes": []}
    rows["agrees_with_original"] = []
    for pid, recs in answers.items():
        votes = Counter(r["preferred"] for r in recs)
        decisive += votes["chosen"] + votes["rejected"]
        agreeing += votes["chosen"]
        if votes["chosen"] == votes["rejected"]:
            if votes["chosen"]:
                report.conflicts += 1
            elif votes["tie"]:
                report.ties += 1
            else:
                report.skipped += 1
            continue
        texts = known.get(pid) if known is not None else _texts_of(recs)
        if texts is None:
            report.unmatched += 1
            continue
        winner = "chosen" if votes["chosen"] > votes["rejected"] else "rejected"
        loser = "rejected" if winner == "chosen" else "chosen"
        rows["prompt"].append(texts["prompt"])
        rows["chosen"].append(texts[winner])
        rows["rejected"].append(texts[loser])
        rows["pair_id"].append(pid)
        rows["votes"].append(votes["chosen"] + votes["rejected"])
        rows["agrees_with_original"].append(winner == "chosen")
    _uniform(rows)
    report.rows_out = len(rows["pair_id"])
    report.original_compared = decisive
    report.original_agreement = agreeing / decisive if decisive else None
    report.annotator_agreement, report.annotator_pairs_compared = annotator_agreement(records)
    logger.info(
        "Annotations: %d rows from %d answers (%s)", report.rows_out, report.labels, report.annotators
    )
    return Dataset.from_dict(rows), report


def _uniform(rows: dict[str, list]) -> None:
    """Plain and conversational rows cannot share a column: if both occur, make every row conversational."""
    for column, role in (("prompt", "user"), ("chosen", "assistant"), ("rejected", "assistant")):
        values = rows[column]
        if any(isinstance(v, str) for v in values) and any(not isinstance(v, str) for v in values):
            rows[column] = [[{"role": role, "content": v}] if isinstance(v, str) else v for v in values]


def _texts_of(recs: list[dict[str, Any]]) -> dict[str, Any] | None:
    for rec in recs:
        if set(PREFERENCE_COLUMNS) <= rec.keys():
            return {k: rec[k] for k in PREFERENCE_COLUMNS}
    return None


def annotation_scheduler(folder: str | Path, *, every: float | None = None) -> Any:
    """A ``CommitScheduler`` pushing ``folder`` to the dataset repo ``$REAL_HUB_LABELS_REPO``, if set.

    Needs a token (``HF_TOKEN`` or a logged-in client). Returns ``None`` when the variable is unset, so
    annotations then stay local. The repo is created (private) if missing; files go under ``labels/``,
    every ``$REAL_HUB_LABELS_EVERY`` minutes (default 5) unless ``every`` is given.
    """
    repo = os.environ.get(ANNOTATIONS_REPO_ENV, "").strip()
    if not repo:
        return None
    from huggingface_hub import CommitScheduler

    minutes = every if every is not None else float(os.environ.get(ANNOTATIONS_EVERY_ENV, "5"))
    logger.info("Pushing annotations from %s to dataset %s every %s min", folder, repo, minutes)
    return CommitScheduler(
        repo_id=repo,
        repo_type="dataset",
        folder_path=folder,
        path_in_repo="labels",
        every=minutes,
        private=True,
        allow_patterns=["*.jsonl"],
        token=os.environ.get("HF_TOKEN"),
    )
