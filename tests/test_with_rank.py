"""One GPU per process with ``datasets``: ``map(num_proc=K, with_rank=True)``.

Process ``rank`` runs on GPU ``rank % device_count()``; on a CPU-only machine the same call runs on the CPU
and says nothing about GPUs; the output equals ``num_proc=1``'s.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from datasets import Dataset

from real_hub import EmbedResponses
from real_hub.models import pick_device

PAIRS = {
    "prompt": ["Say hello.", "Name a colour.", "Count to two.", "Say bye.", "Name a fruit.", "Say yes."],
    "chosen": ["Hello there!", "Blue.", "One, two.", "Goodbye!", "An apple.", "Yes."],
    "rejected": ["No.", "A number.", "Three.", "Hello.", "A car.", "No, never."],
}


@pytest.mark.parametrize(("gpus", "rank", "device"), [(4, 0, "cuda:0"), (4, 5, "cuda:1"), (1, 3, "cuda:0")])
def test_rank_picks_gpu_rank_modulo_device_count(monkeypatch, gpus, rank, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert pick_device(None, rank) == device
    assert pick_device("cpu", rank) == "cpu"  # an explicit device wins


def test_cpu_only_runs_on_the_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None, 3) == "cpu"


def test_with_rank_num_proc_2_equals_num_proc_1_and_says_nothing_of_gpus(gpt2_lm_dir, caplog):
    ds = Dataset.from_dict(PAIRS)
    single = ds.map(EmbedResponses(str(gpt2_lm_dir), backend="causal-lm"), batched=True, batch_size=2)
    with caplog.at_level(logging.DEBUG):
        in_process = ds.map(
            EmbedResponses(str(gpt2_lm_dir), backend="causal-lm", with_rank=True),
            batched=True,
            batch_size=2,
            with_rank=True,
        )
    assert not [r for r in caplog.records if "gpu" in r.getMessage().lower() or "cuda" in r.getMessage()]
    ranked = ds.map(
        EmbedResponses(str(gpt2_lm_dir), backend="causal-lm", with_rank=True),
        batched=True,
        batch_size=2,
        with_rank=True,
        num_proc=2,
    )
    assert in_process.to_list() == single.to_list()
    # a forked worker uses one torch thread, so sums may round differently in the last bits
    for name in ranked.column_names:
        if name.endswith("_embedding"):
            np.testing.assert_allclose(np.array(ranked[name]), np.array(single[name]), atol=1e-6)
        else:
            assert ranked[name] == single[name]
