"""Malformed input, generated systematically, through every converter, processor and the command line.

Each *target* (a converter, a processor under ``Dataset.map``, a dataset-level function) has a valid base
dataset of three rows and the *kind* of each input column (text, chat messages, list of texts, number,
list of numbers, embedding vector, list of vectors, UltraFeedback completions). Every kind has its
mutations (None, empty, wrong type, ragged, NaN, inf, wrong size, unknown role, very long text, ...); a
case puts one mutation into row 1 of one column. Values of another type than the column's make a
``datasets.Json`` column, as ``load_dataset("json")`` does, so the Json path is covered too. Processors
are also called directly on a plain dict batch (no indices): errors then name the row of the batch.

What every case must give (:func:`check_outcome`), whatever the mutation:

- either a ``real_hub`` error that says what was expected and names the mutated row (``row 1``) and
  column, or, for a whole-dataset problem, the column;
- or a result that is not silently wrong: no NaN or infinity, no None, empty or JSON-text value in a text
  column, only known chat roles, and no row lost without a count (``rows_in == rows_out + skipped`` in the
  reports; a WARNING with the counts when a processor's plain ``map`` emits fewer rows than it read).

Zero rows must give an empty result (and a report of 0 in, 0 out); valid but unusual text (unicode, emoji,
NUL characters, 100k characters, a column mixing plain and chat prompts) must come through unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from datasets import Dataset

from real_hub import (
    DensityRatioReward,
    EmbedResponses,
    OrientByReward,
    PairsFromRewards,
    PairSimilarity,
    SelectPairs,
    best_of_n,
    budget_curve,
    budget_filter,
    label_pairs,
    reward_accuracy,
    select_pairs,
    to_candidates,
    to_pairs,
    to_trl,
)
from real_hub.errors import RealHubError
from real_hub.validate import KNOWN_ROLES

NAN, INF = float("nan"), float("inf")
DIM = 4
LONG = "word " * 20_000  # 100k characters
ROW = 1  # every case mutates row 1 of 3
RAGGED = {"ragged", "too_few", "wrong_size", "empty"}


class HashEncoder:
    """A deterministic stand-in for an embedding model."""

    dim = DIM

    def encode(self, texts):
        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest()[:4], "little")
            out.append(np.random.default_rng(seed).normal(size=self.dim) + 0.1)
        return np.asarray(out, dtype=np.float32)


def vec(k: float) -> list[float]:
    v = np.random.default_rng(int(k * 1000)).normal(size=DIM) + 0.1
    return [float(x) for x in v]


# ------------------------------------------------------------------------------------------- mutations

TEXT = {
    "none": None,
    "empty": "",
    "blank": " \n\t ",
    "int": 7,
    "nan": NAN,
    "list": ["a"],
    "dict": {"text": "a"},
    "long": LONG,
}
MESSAGES = {
    "none": None,
    "empty": [],
    "unknown_role": [{"role": "wizard", "content": "hi"}],
    "no_content": [{"role": "user"}],
    "int_content": [{"role": "user", "content": 3}],
    "not_a_message": ["hi"],
    "dict": {"role": "user", "content": "hi"},
    "int": 5,
    "long": [{"role": "user", "content": LONG}],
}
TEXT_LIST = {
    "none": None,
    "empty": [],
    "str": "abc",
    "dict": {"a": "b", "c": "d"},
    "item_none": ["a", None, "b"],
    "item_empty": ["a", "", "b"],
    "item_int": ["a", 3, "b"],
    "ragged": ["a", "b"],
    "long_item": ["a", LONG, "b"],
}
NUMBER = {
    "none": None,
    "str": "x",
    "numeric_str": "1.5",
    "nan": NAN,
    "inf": INF,
    "-inf": -INF,
    "bool": True,
    "list": [1.0],
}
NUMBER_LIST = {
    "none": None,
    "empty": [],
    "ragged": [1.0],
    "nan": [1.0, NAN, 0.5],
    "inf": [INF, 1.0, 0.5],
    "-inf": [1.0, -INF, 0.5],
    "str": ["x", 1.0, 0.5],
    "dict": {"a": 1.0},
    "scalar": 3.0,
}
VECTOR = {
    "none": None,
    "empty": [],
    "nan": [NAN] * DIM,
    "inf": [INF] + [1.0] * (DIM - 1),
    "str": ["a"] * DIM,
    "wrong_size": [1.0] * (DIM + 1),
    "zero": [0.0] * DIM,
    "dict": {"a": 1.0},
}
VECTOR_LIST = {
    "none": None,
    "empty": [],
    "nan": [vec(1), [NAN] * DIM, vec(2)],
    "inf": [vec(1), vec(2), [-INF] * DIM],
    "str": [vec(1), ["a"] * DIM, vec(2)],
    "wrong_size": [vec(1), [1.0] * (DIM + 2), vec(2)],
    "too_few": [vec(1), vec(2)],
    "zero": [vec(1), [0.0] * DIM, vec(2)],
    "dict": {"a": vec(1)},
}
COMPLETIONS = {
    "none": None,
    "empty": [],
    "str": "a completion",
    "item_not_dict": ["a"],
    "response_none": [{"response": None, "annotations": {"h": {"Rating": "4"}}}],
    "rating_nan": [{"response": "a", "annotations": {"h": {"Rating": "nan"}}}],
    "rating_inf": [{"response": "a", "annotations": {"h": {"Rating": "inf"}}}],
    "rating_word": [{"response": "a", "annotations": {"h": {"Rating": "seven"}}}],
    "annotations_list": [{"response": "a", "annotations": ["h"]}],
    "score_nan": [{"response": "a", "fine-grained_score": NAN}],
}
IDENTIFIER = {"none": None, "integer": 7, "float": 1.5, "nan": NAN, "list": ["p"], "dict": {"id": "p"}}
KINDS = {
    "id": IDENTIFIER,
    "text": TEXT,
    "messages": MESSAGES,
    "text_list": TEXT_LIST,
    "number": NUMBER,
    "number_list": NUMBER_LIST,
    "vector": VECTOR,
    "vector_list": VECTOR_LIST,
    "completions": COMPLETIONS,
}

# ------------------------------------------------------------------------------------------- targets


@dataclass
class Result:
    """What a target returned: output rows, and the counts its report gives (None when it has none)."""

    rows: list[dict[str, Any]]
    rows_in: int | None = None
    rows_out: int | None = None
    skipped: int | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Target:
    name: str
    rows: list[dict[str, Any]]
    kinds: dict[str, str]
    run: Callable[[Dataset], Result]
    batch: Callable[[dict[str, list]], dict[str, list]] | None = None  # the processor on a plain dict batch
    text_columns: tuple[str, ...] = ("prompt", "chosen", "rejected")


def hh(turn: str, answer: str) -> str:
    return f"\n\nHuman: {turn}\n\nAssistant: {answer}"


def report_result(out: Dataset, report: Any, rows_in_attr: str, out_attr: str) -> Result:
    skipped = sum(report.skipped.values())
    return Result(out.to_list(), getattr(report, rows_in_attr), getattr(report, out_attr), skipped)


def converter(fn: Callable, source: str) -> Callable[[Dataset], Result]:
    def run(ds: Dataset) -> Result:
        out, report = fn(ds, source)
        return report_result(out, report, "rows_in", "rows_out")

    return run


def mapped(processor: Any, *, remove: bool = False, counts: bool = False) -> Callable[[Dataset], Result]:
    """``ds.map(processor, batched=True, with_indices=True)``; ``counts``: emits its own rows (warn check)."""

    def run(ds: Dataset) -> Result:
        records: list[str] = []
        handler = _ListHandler(records)
        logging.getLogger("real_hub").addHandler(handler)
        try:
            out = ds.map(
                processor,
                batched=True,
                with_indices=True,
                remove_columns=ds.column_names if remove else None,
                load_from_cache_file=False,
            )
        finally:
            logging.getLogger("real_hub").removeHandler(handler)
        result = Result(out.to_list(), warnings=records)
        if counts:
            result.rows_in, result.rows_out = len(ds), len(out)
        return result

    return run


class _ListHandler(logging.Handler):
    def __init__(self, records: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


PAIR_ROWS = [
    {"prompt": f"question {i}", "chosen": f"a good answer {i}", "rejected": f"a bad answer {i}"}
    for i in range(3)
]
CANDIDATE_ROWS = [
    {
        "prompt": f"question {i}",
        "responses": [f"first {i}", f"second {i}", f"third {i}"],
        "scores": [1.0, 3.0, 2.0],
    }
    for i in range(3)
]

EMBEDDED_ROWS = [
    dict(r, responses_embedding=[vec(3 * i), vec(3 * i + 1), vec(3 * i + 2)])
    for i, r in enumerate(CANDIDATE_ROWS)
]


def _select_pairs(ds: Dataset) -> Result:
    out, report = select_pairs(ds, "dissimilar")
    return report_result(out, report, "prompts_in", "pairs_out")


def _label_pairs(ds: Dataset) -> Result:
    out, report = label_pairs(ds)
    return report_result(out, report, "rows_in", "pairs_out")


def _budget(ds: Dataset) -> Result:
    out, report = budget_filter(ds, 0.5)
    return Result(out.to_list(), report.pairs_in, report.pairs_kept, report.pairs_in - report.pairs_kept)


def _budget_curve(ds: Dataset) -> Result:
    curve = budget_curve(ds, budgets=(1.0,), splits=2, show_progress=False)
    rows = [{"split": s, "accuracy": a} for s, a in enumerate(curve.reference)]
    return Result(rows, len(ds), curve.pairs, len(ds) - curve.pairs)


def _accuracy(ds: Dataset) -> Result:
    report = reward_accuracy(ds)
    return Result([{"accuracy": report.accuracy}], report.count, report.count, 0)


def _best_of_n(ds: Dataset) -> Result:
    report = best_of_n(ds)
    return Result([report.to_dict()], report.prompts, report.prompts, 0)


def _to_trl(ds: Dataset) -> Result:
    out = to_trl(ds)
    return Result(out.to_list(), len(ds), len(out), 0)


def targets() -> list[Target]:
    embed = EmbedResponses(HashEncoder())
    select = SelectPairs("dissimilar")
    from_rewards = PairsFromRewards()
    orient = OrientByReward()
    return [
        Target(
            "to_pairs[hh]",
            [{"chosen": hh(f"q{i}", f"yes {i}"), "rejected": hh(f"q{i}", f"no {i}")} for i in range(3)],
            {"chosen": "text", "rejected": "text"},
            converter(to_pairs, "hh"),
        ),
        Target(
            "to_pairs[auto hh]",
            [{"chosen": hh(f"q{i}", f"yes {i}"), "rejected": hh(f"q{i}", f"no {i}")} for i in range(3)],
            {"chosen": "text", "rejected": "text"},
            converter(to_pairs, "auto"),
        ),
        Target(
            "to_pairs[trl]",
            [dict(r, chosen_score=2.0, rejected_score=1.0) for r in PAIR_ROWS],
            {"prompt": "text", "chosen": "text", "rejected": "text", "chosen_score": "number"},
            converter(to_pairs, "trl"),
        ),
        Target(
            "to_pairs[trl conversational]",
            [
                {
                    "prompt": [{"role": "user", "content": f"q{i}"}],
                    "chosen": [{"role": "assistant", "content": f"yes {i}"}],
                    "rejected": [{"role": "assistant", "content": f"no {i}"}],
                }
                for i in range(3)
            ],
            {"prompt": "messages", "chosen": "messages", "rejected": "messages"},
            converter(to_pairs, "auto"),
        ),
        Target(
            "to_pairs[trl implicit]",
            [
                {
                    "chosen": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "yes"}],
                    "rejected": [
                        {"role": "user", "content": f"q{i}"},
                        {"role": "assistant", "content": "no"},
                    ],
                }
                for i in range(3)
            ],
            {"chosen": "messages", "rejected": "messages"},
            converter(to_pairs, "auto"),
        ),
        Target(
            "to_candidates[candidates]",
            CANDIDATE_ROWS,
            {"prompt": "text", "responses": "text_list", "scores": "number_list"},
            converter(to_candidates, "auto"),
        ),
        Target(
            "to_candidates[shp]",
            [
                {
                    "post_id": f"p{i}",
                    "history": f"post {i}",
                    "human_ref_A": f"comment a {i}",
                    "human_ref_B": f"comment b {i}",
                    "score_A": 5,
                    "score_B": 2,
                }
                for i in range(3)
            ],
            {"post_id": "id", "history": "text", "human_ref_A": "text", "score_A": "number"},
            converter(to_candidates, "shp"),
            text_columns=("prompt",),
        ),
        Target(
            "to_candidates[ultrafeedback]",
            [
                {
                    "instruction": f"do {i}",
                    "completions": [
                        {"response": f"done {i}", "annotations": {"helpfulness": {"Rating": "4"}}},
                        {"response": f"not done {i}", "annotations": {"helpfulness": {"Rating": "2"}}},
                    ],
                }
                for i in range(3)
            ],
            {"instruction": "text", "completions": "completions"},
            converter(to_candidates, "ultrafeedback"),
            text_columns=("prompt",),
        ),
        Target(
            "to_trl",
            PAIR_ROWS,
            {"prompt": "text", "chosen": "text", "rejected": "text"},
            _to_trl,
        ),
        Target(
            "EmbedResponses[pairs]",
            PAIR_ROWS,
            {"chosen": "text", "rejected": "text"},
            mapped(embed),
            batch=embed,
        ),
        Target(
            "EmbedResponses[candidates]",
            CANDIDATE_ROWS,
            {"responses": "text_list"},
            mapped(embed),
            batch=embed,
        ),
        Target(
            "PairSimilarity",
            [
                dict(r, chosen_embedding=vec(i), rejected_embedding=vec(i + 10))
                for i, r in enumerate(PAIR_ROWS)
            ],
            {"chosen_embedding": "vector", "rejected_embedding": "vector"},
            mapped(PairSimilarity()),
            batch=PairSimilarity(),
        ),
        Target(
            "budget_filter",
            [dict(r, similarity=0.1 * i) for i, r in enumerate(PAIR_ROWS)],
            {"similarity": "number"},
            _budget,
        ),
        Target(
            "budget_curve",
            [
                dict(r, chosen_embedding=vec(i), rejected_embedding=vec(i + 10))
                for i, r in enumerate(PAIR_ROWS)
            ],
            {"chosen_embedding": "vector", "rejected_embedding": "vector"},
            _budget_curve,
        ),
        Target(
            "select_pairs",
            [
                dict(r, responses_embedding=[vec(3 * i), vec(3 * i + 1), vec(3 * i + 2)])
                for i, r in enumerate(CANDIDATE_ROWS)
            ],
            {
                "prompt": "messages",
                "responses": "text_list",
                "scores": "number_list",
                "responses_embedding": "vector_list",
            },
            _select_pairs,
        ),
        Target(
            "SelectPairs.map",
            [
                dict(r, responses_embedding=[vec(3 * i), vec(3 * i + 1), vec(3 * i + 2)])
                for i, r in enumerate(CANDIDATE_ROWS)
            ],
            {
                "prompt": "text",
                "responses": "text_list",
                "scores": "number_list",
                "responses_embedding": "vector_list",
            },
            mapped(select, remove=True, counts=True),
            batch=select,
        ),
        Target(
            "label_pairs[orient]",
            [dict(r, chosen_reward=1.0, rejected_reward=-1.0 + i) for i, r in enumerate(PAIR_ROWS)],
            {"chosen": "text", "chosen_reward": "number", "rejected_reward": "number"},
            _label_pairs,
        ),
        Target(
            "OrientByReward.map",
            [dict(r, chosen_reward=1.0, rejected_reward=-1.0 + i) for i, r in enumerate(PAIR_ROWS)],
            {"chosen_reward": "number", "rejected_reward": "number"},
            mapped(orient, remove=True, counts=True),
            batch=orient,
        ),
        Target(
            "label_pairs[candidates]",
            [dict(r, rewards=[0.5, -1.0, 2.0]) for r in CANDIDATE_ROWS],
            {"prompt": "text", "responses": "text_list", "rewards": "number_list", "scores": "number_list"},
            _label_pairs,
        ),
        Target(
            "PairsFromRewards.map",
            [dict(r, rewards=[0.5, -1.0, 2.0]) for r in CANDIDATE_ROWS],
            {"prompt": "messages", "responses": "text_list", "rewards": "number_list"},
            mapped(from_rewards, remove=True, counts=True),
            batch=from_rewards,
        ),
        Target(
            "reward_accuracy",
            [{"chosen_reward": 1.0, "rejected_reward": 0.5 * i} for i in range(3)],
            {"chosen_reward": "number", "rejected_reward": "number"},
            _accuracy,
            text_columns=(),
        ),
        Target(
            "best_of_n",
            [{"rewards": [0.5, -1.0, 2.0], "scores": [1.0, 2.0, 3.0]} for _ in range(3)],
            {"rewards": "number_list", "scores": "number_list"},
            _best_of_n,
            text_columns=(),
        ),
    ]


def make_dataset(rows: list[dict[str, Any]]) -> Dataset:
    """The rows as a Dataset; values of mixed types make a ``datasets.Json`` column, as load_dataset does."""
    try:
        return Dataset.from_list(rows)
    except Exception:  # pyarrow cannot type the column: datasets' own answer is a Json column
        return Dataset.from_list(rows, on_mixed_types="use_json")


@dataclass(frozen=True)
class Case:
    target: str
    column: str
    mutation: str
    delivery: str  # "dataset" (map with indices) or "batch" (a plain dict, no indices)

    @property
    def id(self) -> str:
        return f"{self.target}-{self.column}-{self.mutation}-{self.delivery}"


TARGETS = {t.name: t for t in targets()}


def cases() -> list[Case]:
    out = []
    for target in TARGETS.values():
        for column, kind in target.kinds.items():
            for mutation in KINDS[kind]:
                out.append(Case(target.name, column, mutation, "dataset"))
                if target.batch is not None:
                    out.append(Case(target.name, column, mutation, "batch"))
    return out


CASES = cases()

# ------------------------------------------------------------------------------------------- the oracle


@dataclass
class Outcome:
    kind: str  # "error", "handled" (rows skipped and counted), "ok"
    detail: str = ""


def run_case(case: Case) -> tuple[Any, BaseException | None]:
    target = TARGETS[case.target]
    value = KINDS[target.kinds[case.column]][case.mutation]
    rows = [dict(r) for r in target.rows]
    rows[ROW][case.column] = value
    try:
        if case.delivery == "batch":
            assert target.batch is not None
            batch = {k: [r[k] for r in rows] for k in rows[0]}
            return target.batch(batch), None
        return target.run(make_dataset(rows)), None
    except RealHubError as err:
        return None, err


def _bad_value(value: Any, mutant: Any, column: str) -> str | None:
    """Why an output value is silently wrong, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"non-finite number {value}"
    if isinstance(value, (list, tuple, np.ndarray)):
        for v in value:
            why = _bad_value(v, mutant, column)
            if why:
                return why
    if isinstance(value, dict):
        if "role" in value and value["role"] not in KNOWN_ROLES:
            return f"unknown role {value['role']!r}"
        for v in value.values():
            why = _bad_value(v, mutant, column)
            if why:
                return why
    if isinstance(value, str):  # a Json column read as its text: '"a"', '["a"]', '{"a": 1}'
        if isinstance(mutant, (list, dict)) and value == json.dumps(mutant):
            return f"JSON text {value!r}"
        if len(value) >= 2 and value[0] == value[-1] == '"':  # no input text is quoted
            return f"JSON text {value!r}"
    return None


def check_outcome(case: Case, result: Any, error: BaseException | None) -> Outcome:
    target = TARGETS[case.target]
    mutant = KINDS[target.kinds[case.column]][case.mutation]
    if error is not None:
        message = str(error)
        assert "expected" in message, f"the error does not say what was expected: {message}"
        row = f"row {ROW}" + (" of this batch" if case.delivery == "batch" else "")
        names_row = re.search(rf"\b{row}\b", message) is not None
        # a count that does not match another column's (ragged lists) may blame either column
        related = [case.column, *(target.rows[0] if case.mutation in RAGGED else [])]
        names_column = any(f"'{c}" in message for c in related)
        assert names_row or names_column, f"the error names neither row {ROW} nor {case.column!r}: {message}"
        if names_row:
            assert names_column, f"the error names the row but not the column {case.column!r}: {message}"
            other = re.findall(r"\brow (\d+)\b", message)
            assert other[0] == str(ROW), f"the error blames another row: {message}"
        return Outcome("error", "row+column" if names_row else "column")
    if case.delivery == "batch":
        rows = [dict(zip(result, values, strict=True)) for values in zip(*result.values(), strict=True)]
        if not result:
            rows = []
        emitted = len(next(iter(result.values()))) if result else 0
        expected_rows = 3 if isinstance(target.batch, (EmbedResponses, PairSimilarity)) else None
        if expected_rows is not None:
            assert emitted == expected_rows
        for row in rows:
            for name, value in row.items():
                why = _bad_value(value, mutant, name)
                assert why is None, f"output column {name!r}: {why}"
        return Outcome("ok")
    assert isinstance(result, Result)
    for row in result.rows:
        for name, value in row.items():
            why = _bad_value(value, mutant, name)
            assert why is None, f"output column {name!r}: {why}"
            if name in target.text_columns and name != "prompt":
                assert isinstance(value, str) and value.strip(), f"{name!r} holds {value!r}"
            if name == "prompt" and name in target.text_columns:
                assert (isinstance(value, str) and value.strip()) or (isinstance(value, list) and value)
    if result.rows_in is not None and result.skipped is not None:
        assert result.rows_out + result.skipped >= result.rows_in or case.target.startswith(
            "to_candidates[shp"
        )
        return Outcome("handled" if result.skipped else "ok")
    if result.rows_in is not None and result.rows_out is not None and result.rows_out < result.rows_in:
        assert any("skipped" in w for w in result.warnings), "rows dropped without a WARNING that counts them"
        return Outcome("handled")
    return Outcome("ok")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_value_errors_or_is_counted(case: Case):
    result, error = run_case(case)
    check_outcome(case, result, error)


# Mutations that must never pass: each gives a real_hub error or a counted skip, not a clean "ok".
MUST_NOT_PASS = {"nan", "inf", "-inf", "unknown_role", "dict", "str", "none", "item_none", "item_int", "int"}


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.mutation in MUST_NOT_PASS and c.delivery == "dataset"],
    ids=lambda c: c.id,
)
def test_invalid_values_never_pass_silently(case: Case):
    result, error = run_case(case)
    outcome = check_outcome(case, result, error)
    optional_none = case.mutation == "none" and TARGETS[case.target].kinds[case.column] in (
        "number",
        "number_list",
    )
    if not optional_none:  # None scores, rewards are documented: "no score" / "missing_reward"
        assert outcome.kind in ("error", "handled"), f"{case.id} passed as {outcome}"


# ------------------------------------------------------------------------------------------- zero rows


@pytest.mark.parametrize("name", list(TARGETS), ids=list(TARGETS))
def test_zero_rows_give_an_empty_result(name: str):
    target = TARGETS[name]
    ds = make_dataset(target.rows).select([])
    if name == "budget_curve":  # a measurement over splits: nothing to split is an error, not an empty curve
        with pytest.raises(RealHubError, match="needs pairs of at least 2 prompts to split, found 0"):
            target.run(ds)
        return
    result = target.run(ds)
    if name not in ("reward_accuracy", "best_of_n"):
        assert result.rows == []
    if result.rows_in is not None:
        assert (result.rows_in, result.rows_out) == (0, 0)


# ------------------------------------------------------------------------------------- valid but unusual

UNUSUAL = ["naïve café — 你好 👋🏽", "tab\tand\nnewline", "nul\x00inside", "right-to-left مرحبا", LONG]


@pytest.mark.parametrize("text", UNUSUAL, ids=["unicode", "whitespace", "nul", "rtl", "100k"])
def test_unusual_text_comes_through_unchanged(text: str):
    rows = [dict(r) for r in CANDIDATE_ROWS]
    rows[ROW]["responses"] = [text, "second", "third"]
    ds = Dataset.from_list(rows)
    cands, report = to_candidates(ds)
    assert report.rows_out == 3 and cands[ROW]["responses"][0] == text
    embedded = cands.map(EmbedResponses(HashEncoder()), batched=True)
    pairs, report = select_pairs(embedded, "dissimilar")
    assert report.pairs_out == 3 and not report.skipped
    assert text in (pairs[ROW]["chosen"], pairs[ROW]["rejected"]) or text not in rows[ROW]["responses"][1:]
    trl = to_trl(
        to_pairs(Dataset.from_list([{"prompt": "q", "chosen": text, "rejected": "other"}]), "trl")[0]
    )
    assert trl[0]["chosen"] == text


def test_mixed_plain_and_chat_prompts_work_where_documented():
    rows = [
        {"prompt": "plain question", "chosen": "yes", "rejected": "no"},
        {"prompt": [{"role": "user", "content": "chat question"}], "chosen": "sure", "rejected": "never"},
    ]
    ds = Dataset.from_list(rows, on_mixed_types="use_json")
    pairs, report = to_pairs(ds, "trl")
    assert report.rows_out == 2
    trl = to_trl(pairs)
    assert trl[0]["prompt"] == [{"role": "user", "content": "plain question"}]
    assert trl[1]["chosen"] == [{"role": "assistant", "content": "sure"}]


def test_json_column_is_decoded_not_read_as_its_text():
    rows = [dict(r, responses_embedding=[vec(0), vec(1), vec(2)]) for r in CANDIDATE_ROWS]
    rows[0]["prompt"] = [{"role": "user", "content": "chat"}]  # a Json prompt column
    ds = Dataset.from_list(rows, on_mixed_types="use_json")
    assert type(ds.features["prompt"]).__name__ == "Json"
    out = ds.map(SelectPairs("dissimilar"), batched=True, remove_columns=ds.column_names)
    assert out[0]["prompt"] == [{"role": "user", "content": "chat"}]
    assert out[1]["prompt"] == "question 1"  # not '"question 1"'


def test_json_column_error_names_the_bad_row_and_its_value():
    rows = [dict(r) for r in CANDIDATE_ROWS]
    rows[2]["responses"] = {"a": "b"}
    ds = Dataset.from_list(rows, on_mixed_types="use_json")
    with pytest.raises(
        RealHubError, match=r"row 2, column 'responses': expected a list of strings, found dict"
    ):
        ds.map(EmbedResponses(HashEncoder()), batched=True, with_indices=True)


# ------------------------------------------------------------------------------------- skips are visible


def test_select_pairs_map_warns_once_with_counts(caplog):
    rows = [dict(r, responses_embedding=[vec(0), vec(1), vec(2)]) for r in CANDIDATE_ROWS * 4]
    for r in rows[::2]:
        r["scores"] = [1.0, 1.0, 1.0]  # every pair tied
    ds = Dataset.from_list(rows)
    with caplog.at_level(logging.WARNING, logger="real_hub"):
        out = ds.map(SelectPairs("dissimilar"), batched=True, batch_size=2, remove_columns=ds.column_names)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(out) == 6
    assert len(warnings) == 1, warnings
    assert (
        "tied_scores=1" in warnings[0] and "select_pairs()" in warnings[0] and "keep_skipped" in warnings[0]
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="real_hub"):  # a second map call warns again
        ds.map(SelectPairs("dissimilar"), batched=True, batch_size=4, remove_columns=ds.column_names)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_pairs_from_rewards_map_warns_once_with_counts(caplog):
    rows = [dict(r, rewards=[1.0, 1.0, 1.0]) for r in CANDIDATE_ROWS]
    ds = Dataset.from_list(rows)
    with caplog.at_level(logging.WARNING, logger="real_hub"):
        out = ds.map(PairsFromRewards(), batched=True, batch_size=1, remove_columns=ds.column_names)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(out) == 0
    assert len(warnings) == 1 and "tied_rewards=1" in warnings[0] and "label_pairs()" in warnings[0]


def test_no_warning_with_keep_skipped(caplog):
    rows = [dict(r, rewards=[1.0, 1.0, 1.0]) for r in CANDIDATE_ROWS]
    ds = Dataset.from_list(rows)
    with caplog.at_level(logging.WARNING, logger="real_hub"):
        out = ds.map(PairsFromRewards(keep_skipped=True), batched=True, remove_columns=ds.column_names)
    assert out["skip_reason"] == ["tied_rewards"] * 3
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# ------------------------------------------------------------------------------------------- schema detection


def test_trl_without_prompt_is_not_parsed_as_hh():
    ds = Dataset.from_list([{"question": "q", "chosen": "yes", "rejected": "no"}])
    with pytest.raises(RealHubError) as info:
        to_pairs(ds)
    message = str(info.value)
    assert "'question', 'chosen', 'rejected'" in message
    assert "trl: prompt, chosen, rejected" in message and "missing 'prompt'" in message
    assert "expected a transcript" in message


def test_unknown_columns_list_every_schema_tried():
    with pytest.raises(RealHubError) as info:
        to_candidates(Dataset.from_list([{"text": "a", "label": 1}]))
    message = str(info.value)
    for source in ("ultrafeedback", "shp", "candidates", "trl", "hh"):
        assert f"{source}: " in message
    assert "columns ['text', 'label']" in message


def test_implicit_prompt_set_with_one_bad_row_is_trl_and_names_the_row():
    rows = [
        {
            "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "yes"}],
            "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "no"}],
        }
        for _ in range(3)
    ]
    rows[2]["chosen"] = "a plain string"
    ds = Dataset.from_list(rows, on_mixed_types="use_json")
    with pytest.raises(RealHubError, match=r"row 2, column 'chosen'"):
        to_pairs(ds)


# ------------------------------------------------------------------------------------------- length limits


@pytest.fixture(scope="module")
def reward_models(tmp_path_factory):
    import tiny_models

    tok = tiny_models.llama_tokenizer()
    strong = tiny_models.save_tiny(
        tiny_models.tiny_llama(tok, seed=0), tok, tmp_path_factory.mktemp("strong")
    )
    weak = tiny_models.save_tiny(tiny_models.tiny_llama(tok, seed=1), tok, tmp_path_factory.mktemp("weak"))
    return str(strong), str(weak)


def test_response_longer_than_the_context_is_refused_before_the_model_runs(gpt2_lm_dir):
    """GPT-2's learned position table ends at n_positions: past it, torch would fail with an IndexError."""
    rows = [dict(r) for r in PAIR_ROWS]
    rows[ROW]["rejected"] = LONG
    reward = DensityRatioReward(str(gpt2_lm_dir), str(gpt2_lm_dir), domain_routing=False)
    with pytest.raises(
        RealHubError, match=rf"row {ROW}, column 'rejected': the prompt \+ response is \d+ tokens"
    ):
        Dataset.from_list(rows).map(reward, batched=True, with_indices=True)


def test_response_longer_than_the_context_is_cut_and_counted_with_max_length(reward_models):
    rows = [dict(r) for r in PAIR_ROWS]
    rows[ROW]["rejected"] = LONG
    reward = DensityRatioReward(*reward_models, domain_routing=False, chat_template=False, max_length=64)
    out = Dataset.from_list(rows).map(reward, batched=True, with_indices=True)
    assert reward.stats.truncated == 1
    assert np.isfinite(out["rejected_reward"]).all()


@pytest.mark.parametrize("column", ["prompt", "chosen"])
@pytest.mark.parametrize("mutation", ["none", "empty", "int", "dict", "unknown_role", "nan"])
def test_reward_inputs_name_the_row(reward_models, column, mutation):
    value = (
        {**TEXT, **MESSAGES}[mutation] if column == "prompt" else TEXT.get(mutation, MESSAGES.get(mutation))
    )
    rows = [dict(r) for r in PAIR_ROWS]
    rows[ROW][column] = value
    reward = DensityRatioReward(*reward_models, domain_routing=False)
    with pytest.raises(RealHubError, match=rf"row {ROW}, column '{column}.*expected"):
        make_dataset(rows).map(reward, batched=True, with_indices=True)


def test_causal_lm_embeddings_cut_long_responses_to_the_context_and_count_them(gpt2_lm):
    from real_hub.encoders import CausalLMEncoder

    encoder = CausalLMEncoder(gpt2_lm.model, gpt2_lm.tokenizer)
    vectors = encoder.encode(["short", LONG])
    assert encoder.truncated == 1 and np.isfinite(vectors).all()


# ------------------------------------------------------------------------------------------- the command line


def _cli(tmp_path, *args: str) -> tuple[int, str]:
    import contextlib
    import io

    from real_hub.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["curate", *args, "--output-dir", str(tmp_path / "out"), "-q"])
    return code, err.getvalue()


def _write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


OK_LINE = '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
CLI_CASES = {
    "malformed_line": (
        lambda d: [
            _write(d / "bad.jsonl", '{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": oops}\n')
        ],
        r"bad\.jsonl, line 2: malformed JSON",
    ),
    "not_an_object": (
        lambda d: [_write(d / "list.jsonl", '{"prompt": "p", "chosen": "a", "rejected": "b"}\n[1, 2]\n')],
        r"list\.jsonl, line 2: expected a JSON object",
    ),
    "empty_file": (lambda d: [_write(d / "empty.jsonl", "")], r"empty\.jsonl is empty"),
    "blank_file": (lambda d: [_write(d / "blank.jsonl", "\n\n")], r"blank\.jsonl is empty"),
    "missing_path": (lambda d: ["./no-such-folder"], r"no such file: \./no-such-folder"),
    "missing_file": (lambda d: [str(d / "nope.jsonl")], r"no such file: .*nope\.jsonl"),
    "limit_zero": (
        lambda d: [
            _write(d / "ok.jsonl", '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'),
            "--limit",
            "0",
        ],
        r"(?m)^error: --limit N: N must be a positive number of rows \(leave it out for all\)",
    ),
    "limit_negative": (
        lambda d: [
            _write(d / "ok.jsonl", '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'),
            "--limit",
            "-2",
        ],
        r"(?m)^error: --limit N: N must be a positive number of rows \(leave it out for all\)",
    ),
    "unknown_columns": (
        lambda d: [_write(d / "cols.jsonl", '{"question": "q", "answer": "a"}\n')],
        r"(?s)Schemas tried.*pass --format to name the schema",
    ),
    "no_prompt": (
        lambda d: [_write(d / "np.jsonl", '{"question": "q", "chosen": "a", "rejected": "b"}\n')],
        r"missing 'prompt'",
    ),
    "bad_value_row": (
        lambda d: [
            _write(
                d / "val.jsonl",
                OK_LINE + '{"prompt": "p", "chosen": 5, "rejected": "b"}\n',
            )
        ],
        r"row 1, column 'chosen': expected a string",
    ),
    "unknown_role": (
        lambda d: [
            _write(
                d / "role.jsonl",
                '{"prompt": [{"role": "wizard", "content": "x"}], "chosen": "a", "rejected": "b"}\n',
            )
        ],
        r"row 0, column 'prompt\[0\]\.role': expected a message role",
    ),
}


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_names_file_line_option_or_row(tmp_path, name):
    make, pattern = CLI_CASES[name]
    code, err = _cli(tmp_path, *make(tmp_path))
    assert code == 2, err
    assert re.search(pattern, err), err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------- encoder faults


class FaultyEncoder:
    """An encoder that answers wrongly in one way."""

    dim = DIM

    def __init__(self, fault: str) -> None:
        self.fault = fault

    def encode(self, texts):
        out = HashEncoder().encode(texts).astype(object if self.fault == "str" else np.float32)
        if self.fault == "too_few":
            return out[:-1]
        if self.fault == "wrong_dim":
            return np.concatenate([out, out[:, :1]], axis=1)
        k = texts.index(PAIR_ROWS[ROW]["rejected"])
        out[k] = {"nan": NAN, "inf": INF, "zero": 0.0, "str": "x"}[self.fault]
        return out


@pytest.mark.parametrize("fault", ["too_few", "wrong_dim", "nan", "inf", "zero", "str"])
def test_encoder_faults_are_real_hub_errors(fault):
    ds = Dataset.from_list(PAIR_ROWS)
    with pytest.raises(RealHubError, match="expected") as info:
        ds.map(EmbedResponses(FaultyEncoder(fault)), batched=True, with_indices=True)
    if fault in ("nan", "inf", "zero"):  # one response's vector: its row and column are named
        assert "row 1, column 'rejected'" in str(info.value)
