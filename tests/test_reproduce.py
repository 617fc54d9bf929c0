"""experiments/reproduce.py runs end to end and resumes from its cache.

``--small --dry-run`` (tiny random models, a handful of pairs) writes every table and plot into RESULTS.md,
and a rerun takes every step from its cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HH_FILE = Path(
    os.environ.get(
        "REAL_HUB_HH_FILE", ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    )
)
SECTIONS = [
    "## Run",
    "## 1. REAL on HH: DPO on each selection, held-out implicit reward",
    "## 2. Label noise against similarity",
    "## 3. Dr.SoW on HH",
    "## 4. Annotation saved: the budget curve (dissimilar, MiniLM)",
    "## The papers' figures beside ours",
    "## What agrees and what does not",
]
PLOTS = ["strategies.png", "agreement_by_similarity.png", "budget_curve.png"]
TRAINING_SETS = [
    "all",
    "dissimilar-50-minilm",
    "similar-50-minilm",
    "dissimilar-50-causal-lm",
    "similar-50-causal-lm",
    "random-50",
    "dissimilar-25-minilm",
    "dissimilar-75-minilm",
]


def _reproduce(out: Path) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "reproduce.py"),
            "--small",
            "--dry-run",
            "--output-dir",
            str(out),
            "--data",
            str(HH_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HF_HUB_OFFLINE": "1",
            "TQDM_DISABLE": "1",
            "OMP_NUM_THREADS": "1",  # tiny models: one thread is fastest, and spares a shared machine
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "cache_report.json").read_text())


@pytest.mark.slow
@pytest.mark.skipif(not HH_FILE.exists(), reason="the shared HH-RLHF file is not on this machine")
def test_dry_run_writes_every_table_and_plot_and_the_rerun_uses_the_cache(tmp_path):
    out = tmp_path / "run"
    first = _reproduce(out)
    text = (out / "RESULTS.md").read_text()
    # the script's own section of RESULTS.md (experiments/results_file.py), between its markers
    assert text.startswith("<!-- section reproduce: written by experiments/reproduce.py; do not edit -->\n")
    assert text.endswith("<!-- end reproduce -->\n")
    title = text.split("\n")[1]
    assert title.startswith("# Reproducing REAL and Dr.SoW with real-hub: SMALL setting (DRY RUN")
    for section in SECTIONS:
        assert section in text
    for plot in PLOTS:
        assert f"](plots/{plot})" in text
        assert (out / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in TRAINING_SETS[:6]:
        assert f"| {name} |" in text
    for budget in ("25%", "50%", "75%", "100%"):
        assert f"| {budget} |" in text
    for row in (
        "Dr.SoW (sum), routing off",
        "Dr.SoW (mean), routing on",
        "log-likelihood of the SFT model (sum)",
    ):
        assert f"| {row} |" in text
    assert (
        text.count("**minilm** embeddings: slope") == 1 and text.count("**causal-lm** embeddings: slope") == 1
    )
    split = json.loads((out / "split.json").read_text())
    assert len(split["train_rows"]) == len(split["train_source_ids"]) == 8
    assert not set(split["train_source_ids"]) & set(split["eval_source_ids"])
    expected = {"split", "similarity/minilm", "similarity/causal-lm", "logps/sft", "drsow/routing-on"}
    expected |= {f"models/{name}/seed0" for name in TRAINING_SETS} | {
        f"logps/{name}-seed0" for name in TRAINING_SETS
    }
    assert expected <= set(first["computed"])

    again = _reproduce(out)
    assert again["computed"] == []
    assert expected <= set(again["hits"])
    assert (out / "RESULTS.md").read_text().split("## 1.")[1] == text.split("## 1.")[1]  # same figures
