"""The few places real-hub relies on another library's internals, kept here, each with a test.

``datasets`` has no public way for a ``map`` function to know which ``map`` call is running it, or which
dataset that call maps; real-hub needs both to warn once per call about skipped rows, and to repeat that
warning when the call is answered from the cache. Both are read off the running ``Dataset.map`` frames. When a
``datasets`` release renames them, these functions return None (the warnings then fall back to once per
processor), and ``tests/test_compat.py`` fails naming the installed ``datasets`` version.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

#: The function ``Dataset.map`` runs each shard in (datasets 4.x-5.x), and the method itself.
MAP_SHARD_FUNCTION = "_map_single"
MAP_METHOD = "map"


def _frames(skip: int) -> Any:
    frame: FrameType | None = sys._getframe(skip + 1)
    while frame is not None:
        yield frame
        frame = frame.f_back


def _is_datasets_code(frame: FrameType) -> bool:
    return f"{Path('datasets') / 'arrow_dataset.py'}" in frame.f_code.co_filename


def running_map_call() -> tuple[int, str | None] | None:
    """An identity of the ``Dataset.map`` shard call running the caller, else None (a direct call, Ray)."""
    for frame in _frames(1):
        if frame.f_code.co_name == MAP_SHARD_FUNCTION and _is_datasets_code(frame):
            return (id(frame), frame.f_locals.get("new_fingerprint"))
    return None


def running_map_dataset() -> Any:
    """The ``Dataset`` that a running ``Dataset.map`` call maps (in this process), else None.

    In a ``num_proc>1`` worker the ``map`` call runs in the parent process, so the answer is None there.
    """
    for frame in _frames(1):
        if frame.f_code.co_name == MAP_METHOD and _is_datasets_code(frame):
            dataset = frame.f_locals.get("self")
            if dataset is not None and hasattr(dataset, "cache_files"):
                return dataset
    return None


def dataset_fingerprint(dataset: Any) -> str | None:
    """The content fingerprint ``datasets`` keeps for ``dataset`` (what its cache files are named by)."""
    value = getattr(dataset, "_fingerprint", None)
    return value if isinstance(value, str) else None
