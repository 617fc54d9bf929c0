"""benchmarks/bench_gpu.py runs in its --dry-run mode (a tiny model on the CPU), so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_gpu_dry_run(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--dry-run", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["gpu"] is None
    (engine,) = report["engine"]
    assert engine["sequences"] == 8 and engine["response_tokens"] > 0 and engine["flops_per_s"] > 0
    assert report["trl"][0]["seconds_with_precompute"] > 0
    assert report["embed"]["texts"] == 8 and report["embed"]["ratio"] > 0
