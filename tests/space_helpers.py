"""Helpers shared by the Space tests: a tiny encoder, a free port, synthetic curated sets, a launched app."""

from __future__ import annotations

import hashlib
import socket
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from datasets import Dataset

from real_hub import Provenance, Statistics, save_curated

DOMAINS = ("chat", "safety", "reasoning")


class HashEncoder:
    """Deterministic fake encoder: a vector from each text's hash (no model to load)."""

    dim = 8

    def encode(self, texts):
        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            out.append(np.random.default_rng(seed).normal(size=self.dim))
        return np.asarray(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_pairs(n: int, seed: int = 0) -> Dataset:
    """``n`` pairs with similarity, rewards, margin and domain; every 7th prompt mentions 'zebra'."""
    rng = np.random.default_rng(seed)
    sim = np.round(rng.uniform(-1, 1, n), 4)
    cr = np.round(rng.normal(1, 1, n), 4)
    rr = np.round(cr - rng.uniform(0, 2, n), 4)
    return Dataset.from_dict(
        {
            "prompt": [f"question {i}" + (" about a zebra" if i % 7 == 0 else "") for i in range(n)],
            "chosen": [f"a helpful answer number {i} with details" for i in range(n)],
            "rejected": [f"a short answer number {i}" for i in range(n)],
            "similarity": sim.tolist(),
            "strategy": ["dissimilar"] * n,
            "chosen_reward": cr.tolist(),
            "rejected_reward": rr.tolist(),
            "margin": np.round(cr - rr, 4).tolist(),
            "domain": [DOMAINS[i % 3] for i in range(n)],
        }
    )


def save_synthetic(folder: Path, n: int) -> Dataset:
    data = synthetic_pairs(n)
    save_curated(
        data,
        folder,
        "dissimilar",
        provenance=Provenance(source="synthetic", strategy="dissimilar", seed=0),
        statistics=Statistics(rows_in=n, rows_out={"train": n}),
    )
    return data


@contextmanager
def launched(app):
    """The app served on loopback; yields its URL."""
    from real_hub.space.app import CSS

    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=CSS)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()
