"""Run semhash's ``self_deduplicate`` on a prompts file with a given model2vec model; write one JSON report.

Runs inside semhash's own virtual environment (``benchmarks/.venv-semhash``, made by ``bench_dedup.py``):
it must not import real_hub. By hand:

    benchmarks/.venv-semhash/bin/python benchmarks/_semhash_driver.py \
        --data prompts.parquet --model MODEL_DIR --threshold 0.9 --out report.json

Timed: ``SemHash.from_records`` (exact grouping, embedding, the usearch index) and ``self_deduplicate``.
Not timed: reading the file into records, loading the model. ``rss_before_mb`` is this process's RSS just
before the timed call (the records in memory); the parent samples the peak.
"""

from __future__ import annotations

import argparse
import json
import time


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import pyarrow.parquet as pq
    import semhash
    from model2vec import StaticModel
    from semhash import SemHash

    texts = pq.read_table(args.data, columns=["text"]).column("text").to_pylist()
    records = [{"text": t, "id": i} for i, t in enumerate(texts)]
    del texts
    model = StaticModel.from_pretrained(args.model)
    model.encode(["warm-up"])
    before = rss_mb()
    start = time.perf_counter()
    index = SemHash.from_records(records, columns=["text"], model=model)
    result = index.self_deduplicate(threshold=args.threshold)
    seconds = time.perf_counter() - start
    removed = [[int(d.record["id"]), int(d.duplicate_of["id"]), bool(d.exact)] for d in result.filtered]
    with open(args.out, "w") as f:
        json.dump(
            {
                "tool": f"semhash {semhash.__version__ if hasattr(semhash, '__version__') else '?'}",
                "seconds": seconds,
                "rss_before_mb": before,
                "rows": len(records),
                "removed": removed,
            },
            f,
        )


if __name__ == "__main__":
    main()
