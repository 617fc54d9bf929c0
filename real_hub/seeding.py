"""Seeded draws that depend on a row's content only, never on its batch, order or process.

REAL's ``random`` strategy and Dr.SoW's ``best-vs-random`` both key a row by a hash of
``[seed, prompt, responses]`` and draw with SplitMix64 from that key, so a row gets the same draw in
every batch size, ``num_proc`` and shard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

GAMMA = 0x9E3779B97F4A7C15


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, elementwise on uint64 (wrapping arithmetic)."""
    z = x.astype(np.uint64, copy=True)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_key(seed: int, prompt: Any, responses: Sequence[str]) -> int:
    """A stable 64-bit key of (seed, prompt, responses), the same in every process and batch."""
    text = json.dumps([seed, prompt, list(responses)], sort_keys=True, ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def random_priorities(keys: np.ndarray, num_pairs: int) -> np.ndarray:
    """Priority of each pair ``p`` of each row: ``splitmix64(key + (p + 1) * gamma)``; lowest are picked."""
    counters = (np.arange(1, num_pairs + 1, dtype=np.uint64) * np.uint64(GAMMA))[None, :]
    return splitmix64(keys.astype(np.uint64)[:, None] + counters)


def random_other(key: int, count: int) -> int:
    """The position drawn among ``count`` others: ``splitmix64(key + gamma) % count``."""
    z = splitmix64(np.array([(key + GAMMA) % 2**64], dtype=np.uint64))
    return int(z[0] % np.uint64(count))
