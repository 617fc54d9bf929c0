"""The Space's Duplicates tab: the table of a set's duplicate prompt groups, and its endpoint."""

from __future__ import annotations

import pytest
from datasets import Dataset
from dedup_helpers import BowEncoder, distinct_prompts, paraphrase, vary_case_and_space

from real_hub import save_curated
from real_hub.space.duplicates import DUPLICATE_COLUMNS, duplicate_groups

PROMPTS = distinct_prompts(6)
ROWS = PROMPTS + [vary_case_and_space(PROMPTS[2]), paraphrase(PROMPTS[3]), PROMPTS[2]]


@pytest.fixture
def pairs() -> Dataset:
    n = len(ROWS)
    return Dataset.from_dict({"prompt": ROWS, "chosen": ["yes"] * n, "rejected": ["no"] * n})


def test_the_table_lists_each_group_largest_first_kept_row_first(pairs):
    frame, summary = duplicate_groups(pairs, 0.85, BowEncoder())
    assert list(frame.columns) == DUPLICATE_COLUMNS
    lines = frame[["group", "row", "status"]].values.tolist()
    assert lines == [
        [0, 2, "kept"],
        [0, 6, "exact copy"],
        [0, 8, "exact copy"],
        [1, 3, "kept"],
        [1, 7, "near-duplicate"],
    ]
    assert frame["prompt"][1] == " ".join(ROWS[6].split())
    assert 0.85 <= frame["similarity"][4] < 1.0
    assert summary.startswith("deduplicate: 9 rows in, 2 exact copies and 1 near-duplicates removed")


def test_the_endpoint_reads_the_chosen_config_and_split(tmp_path, pairs):
    from real_hub.space.annotation import AnnotationStore
    from real_hub.space.browse import SourceCache
    from real_hub.space.handlers import SpaceHandlers
    from real_hub.space.queue import AnnotationQueues

    folder = tmp_path / "set"
    save_curated(pairs, folder, "dissimilar")
    handlers = SpaceHandlers(
        SourceCache(encoder=BowEncoder()), AnnotationQueues(AnnotationStore(tmp_path / "labels"), 0)
    )
    frame, summary = handlers.duplicates(str(folder), "dissimilar", "train", 0.85)
    assert frame["row"].tolist() == [2, 6, 8, 3, 7]
    frame, summary = handlers.duplicates(str(folder), "", "train", 0.85)
    assert frame.empty and summary == "no config selected"


def test_the_app_has_the_duplicates_endpoint(tmp_path):
    from real_hub.space.app import build_app

    app = build_app(None, annotations_dir=tmp_path, encoder=BowEncoder(), scheduler=None)
    assert "duplicates" in {fn.api_name for fn in app.fns.values()}
