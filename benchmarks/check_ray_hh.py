"""The whole HH-RLHF harmless-base test file through both engines of ``curate``: the same pairs, report and
card statistics, to the bit (the test suite checks a 600-row slice: tests/test_ray.py).

Usage: python benchmarks/check_ray_hh.py [--budget 0.35] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=0.35)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    import ray
    from huggingface_hub import DatasetCard

    from real_hub import curate

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out = Path(tempfile.mkdtemp(prefix="check-ray-hh-"))
    results, seconds = {}, {}
    for engine in ("datasets", "ray"):
        start = time.perf_counter()
        results[engine] = curate(
            str(HH), output_dir=out / engine, engine=engine, budget=args.budget, batch_size=args.batch_size
        )
        seconds[engine] = time.perf_counter() - start
    ray.shutdown()
    default, on_ray = results["datasets"], results["ray"]
    reports = [r.report.to_dict() for r in (default, on_ray)]
    for report in reports:
        report.pop("seconds"), report.pop("output_dir")
    cards = [
        DatasetCard.load(out / engine / "README.md").data.to_dict()["real_hub"]["configs"]["dissimilar"]
        for engine in ("datasets", "ray")
    ]
    same = {
        "pairs": default.dataset.to_list() == on_ray.dataset.to_list(),
        "report": reports[0] == reports[1],
        "card statistics": cards[0]["statistics"] == cards[1]["statistics"],
    }
    print(f"rows in {on_ray.report.conversion.rows_in}, pairs kept {len(on_ray.dataset)}; seconds {seconds}")
    print("equal:", same)
    if not all(same.values()):
        raise SystemExit("the engines differ")


if __name__ == "__main__":
    main()
