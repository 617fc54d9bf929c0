"""Start-up costs a user meets first: ``real-hub --help``, ``import real_hub``, and loading the offline
SmolLM2 (the packaged GGUF), for this checkout and, side by side, for a peer checkout (the previous main).

Usage:
    python benchmarks/bench_startup.py [--peer /path/to/old/checkout/.venv] [--runs 7] [--json OUT]

Each figure is the median of ``--runs`` fresh processes, this tree's and the peer's interleaved. The SmolLM2
load is timed twice per tree in fresh processes: the first load with an empty real-hub cache
(``REAL_HUB_CACHE`` in a temporary folder: the GGUF is converted to a plain folder once, since 0.2) and a
later one with that cache filled. The peer dequantised the GGUF on every load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOAD = (
    "import time; t = time.perf_counter(); from real_hub.models import read_causal_lm; "
    "read_causal_lm('HuggingFaceTB/SmolLM2-135M-Instruct'); print(time.perf_counter() - t)"
)


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def trees(peer: Path | None) -> dict[str, Path]:
    """The virtual environments to compare: this checkout's, and the peer's."""
    out = {"this tree": ROOT / ".venv"}
    if peer is not None:
        out["peer"] = peer
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peer", type=Path, default=None, help="The peer checkout's virtual environment.")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-load", action="store_true", help="Skip the SmolLM2 load times.")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    venvs = trees(args.peer)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    commands = {
        "real-hub --help": lambda v: [str(v / "bin" / "real-hub"), "--help"],
        "real-hub curate --help": lambda v: [str(v / "bin" / "real-hub"), "curate", "--help"],
        "import real_hub": lambda v: [str(v / "bin" / "python"), "-c", "import real_hub"],
    }
    times: dict[str, dict[str, list[float]]] = {name: {tree: [] for tree in venvs} for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            for tree, venv in venvs.items():  # interleaved: load changes hit both trees alike
                times[name][tree].append(timed(command(venv), env, work))
    report: dict = {
        "runs": args.runs,
        "load_before": os.getloadavg(),
        "medians_s": {n: {t: statistics.median(v) for t, v in by.items()} for n, by in times.items()},
    }
    if not args.no_load:
        report["smollm2_load_s"] = {}
        for tree, venv in venvs.items():
            cache = Path(tempfile.mkdtemp(prefix="bench-startup-cache-"))
            loads = []
            for _ in range(2):
                out = subprocess.run(
                    [str(venv / "bin" / "python"), "-c", LOAD],
                    env={**env, "REAL_HUB_CACHE": str(cache)},
                    cwd=work,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                loads.append(float(out.stdout.strip().splitlines()[-1]))
            report["smollm2_load_s"][tree] = {"first": loads[0], "later": loads[1]}
            shutil.rmtree(cache, ignore_errors=True)
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
