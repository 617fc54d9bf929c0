"""experiments/budget_study.py runs end to end (tiny models) and writes only its own section of RESULTS.md.

``--dry-run`` embeds 120 HH pairs with tiny random models, measures three splits and writes every table,
plot and verdict; a rerun reads the cached embeddings and gives the same figures.
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
sys.path.insert(0, str(ROOT / "experiments"))
from results_file import read_sections, write_section  # noqa: E402

SECTIONS = [
    "## Run",
    "## Summary",
    "## Budget curve: minilm",
    "## Budget curve: static",
    "## Budget curve: causal-lm",
    "## The learner's settings: do they change the comparison?",
    "## Label noise by similarity decile",
    "## The mechanical part",
    "## The papers' figures beside ours",
    "## Verdicts",
]
PLOTS = ["hh_budget_minilm.png", "hh_budget_static.png", "hh_budget_causal-lm.png", "hh_agreement.png"]


def _study(out: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "budget_study.py"), "--dry-run", "--output-dir", str(out),
         "--data", str(HH_FILE)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1",
             "REAL_HUB_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.skipif(not HH_FILE.exists(), reason="the shared HH-RLHF file is not on this machine")
def test_dry_run_writes_its_section_plots_and_verdicts_and_reruns_from_the_cache(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    other = "# Reproducing REAL and Dr.SoW\n\nthe DPO section, written by reproduce.py\n"
    write_section(out / "RESULTS.md", "reproduce", other)
    _study(out)
    text = (out / "RESULTS.md").read_text()
    sections = read_sections(text)
    assert sections["reproduce"] == other  # the other script's section is kept as it was
    assert list(sections) == ["budget-study", "reproduce"]
    study = sections["budget-study"]
    assert study.startswith("# How much annotation does REAL save?") and "(DRY RUN" in study.split("\n")[0]
    for section in SECTIONS:
        assert f"\n{section}\n" in study
    for plot in PLOTS:
        assert f"](plots/{plot})" in study
        assert (out / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    verdicts = study.split("## Verdicts\n")[1].strip().splitlines()
    assert len(verdicts) == 8
    assert all(
        line.startswith(("- **holds**", "- **does not hold**", "- **cannot tell**")) for line in verdicts
    )
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["embedders"]) == ["causal-lm", "minilm", "static"]
    assert summary["splits"] == 3
    minilm = summary["embedders"]["minilm"]
    row = next(line for line in study.splitlines() if line.startswith("| minilm | "))
    assert (
        f"{100 * minilm['at_50']['dissimilar'][0]:.1f} [{100 * minilm['at_50']['dissimilar'][1]:.1f}," in row
    )
    for key in summary["embedders"]:
        assert (out / "embeddings" / f"{key}.npz").exists()
        assert (out / "curves" / key / "budget_curve.json").exists()

    stamps = {p: p.stat().st_mtime_ns for p in (out / "embeddings").glob("*.npz")}
    again = _study(out)
    assert (
        "cache hit: embeddings/minilm" in again.stderr and "cache hit: embeddings/causal-lm" in again.stderr
    )
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    rerun = read_sections((out / "RESULTS.md").read_text())["budget-study"]
    assert rerun.split("## Summary")[1] == study.split("## Summary")[1]  # same figures, from the cache
