"""When real-hub shows a progress bar: the one switch every long loop reads (tqdm's ``disable=``)."""

from __future__ import annotations

import logging
import os

#: Environment variable that turns every real-hub progress bar off when set to ``1``/``true``.
DISABLE_PROGRESS_ENV = "REAL_HUB_DISABLE_PROGRESS_BARS"
_MIN_STEPS_FOR_PROGRESS = 8


def progress_enabled(show_progress: bool | None, steps: int) -> bool:
    """On when asked or for many steps; off by env var or a ``real_hub`` log level above INFO."""
    if os.environ.get(DISABLE_PROGRESS_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if logging.getLogger("real_hub").level > logging.INFO:
        return False
    return show_progress if show_progress is not None else steps >= _MIN_STEPS_FOR_PROGRESS
