"""The few places real-hub relies on another library's internals, kept here, each with a test.

**datasets.** ``datasets`` has no public way for a ``map`` function to know which ``map`` call is running it,
or which dataset that call maps; real-hub needs both to warn once per call about skipped rows, and to repeat
that warning when the call is answered from the cache. Both are read off the running ``Dataset.map`` frames.
When a ``datasets`` release renames them, these functions return None (the warnings then fall back to once per
processor), and ``tests/test_compat.py`` fails naming the installed ``datasets`` version.

**TRL.** ``DPOTrainer.__init__`` (TRL 1.x) calls ``self._precompute_ref_logps(dataset, name, batch_size)`` for
the train and eval sets when ``precompute_ref_log_probs=True``, and that method always runs the reference
model, even when the data carry reference log-probs. real-hub supplies them (from its engine or the data) by
routing that one call to a method of its own subclass (:func:`route_trl_precompute`). ``tests/test_compat.py``
fails naming the installed TRL version when the call moves.
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


#: The ``DPOTrainer`` method (TRL 1.x) that computes the reference log-probs of a tokenized set.
TRL_PRECOMPUTE = "_precompute_ref_logps"
TRL_PRECOMPUTE_PARAMETERS = ["self", "dataset", "name", "batch_size"]


def route_trl_precompute(cls: type, method: str) -> type:
    """Make ``cls`` (a ``DPOTrainer`` subclass) compute its reference log-probs with ``cls.<method>``.

    Raises a ``RuntimeError`` naming the installed TRL version when ``DPOTrainer`` has no such hook.
    """
    import inspect

    import trl
    from trl import DPOTrainer

    hook = getattr(DPOTrainer, TRL_PRECOMPUTE, None)
    if hook is None or list(inspect.signature(hook).parameters) != TRL_PRECOMPUTE_PARAMETERS:
        raise RuntimeError(
            f"trl {trl.__version__} has no DPOTrainer.{TRL_PRECOMPUTE}(dataset, name, batch_size), through "
            "which real-hub supplies reference log-probs; install the TRL version real-hub supports "
            "(trl>=1.0,<2), or train with precompute_ref='none'"
        )
    setattr(cls, TRL_PRECOMPUTE, getattr(cls, method))
    return cls


def trl_precompute(trainer: Any, dataset: Any, name: str, batch_size: int) -> Any:
    """TRL's own reference pass over ``dataset`` (what ``route_trl_precompute`` replaced)."""
    from trl import DPOTrainer

    return getattr(DPOTrainer, TRL_PRECOMPUTE)(trainer, dataset, name, batch_size)
