"""Overhead of ``ds.map(EmbedResponses())`` over one ``SentenceTransformer.encode`` call on the same texts.

Both embed every response (chosen and rejected) of the HH-RLHF harmless-base test file with the
packaged all-MiniLM-L6-v2 on the CPU, alternating in one process, ``--runs`` times each; the figure is
the ratio of the medians. The map runs with caching off, so it really embeds each time.

    python benchmarks/bench_embed.py [--runs 3] [--limit N] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import datasets
import torch

from real_hub import EmbedResponses, to_pairs
from real_hub.atomic import write_json_atomic
from real_hub.models import DEFAULT_EMBEDDER, load_sentence_transformer

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="Use the first N pairs only.")
    parser.add_argument("--batch-size", type=int, default=64, help="Model batch size, both sides.")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    datasets.disable_caching()
    datasets.disable_progress_bars()
    raw = datasets.load_dataset("json", data_files=args.data, split="train")
    pairs, _ = to_pairs(raw)
    if args.limit:
        pairs = pairs.select(range(min(args.limit, len(pairs))))
    pairs = pairs.select_columns(["prompt", "chosen", "rejected"])
    texts = list(pairs["chosen"]) + list(pairs["rejected"])
    unique = len(set(texts))

    model = load_sentence_transformer(DEFAULT_EMBEDDER, device="cpu")
    embed = EmbedResponses(DEFAULT_EMBEDDER, device="cpu", batch_size=args.batch_size)
    embed.encoder()  # load outside the timed region, as the baseline's model is

    def run_encode() -> float:
        t = time.perf_counter()
        model.encode(
            texts,
            batch_size=args.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return time.perf_counter() - t

    def run_map() -> float:
        t = time.perf_counter()
        out = pairs.map(embed, batched=True, batch_size=1000, load_from_cache_file=False)
        assert len(out) == len(pairs) and len(out[0]["chosen_embedding"]) == 384
        return time.perf_counter() - t

    run_encode()  # warm-up (thread pools, allocator)
    times: dict[str, list[float]] = {"encode": [], "map": []}
    for _ in range(args.runs):
        times["encode"].append(run_encode())
        times["map"].append(run_map())
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "texts": len(texts),
        "unique_texts": unique,
        "pairs": len(pairs),
        "runs": args.runs,
        "seconds": times,
        "median_seconds": med,
        "overhead": med["map"] / med["encode"] - 1.0,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    print(f"texts: {len(texts)} ({unique} unique), {args.runs} runs each, alternating")
    print(f"SentenceTransformer.encode  median {med['encode']:.2f} s  runs {fmt(times['encode'])}")
    print(f"ds.map(EmbedResponses())    median {med['map']:.2f} s  runs {fmt(times['map'])}")
    print(f"map overhead: {result['overhead']:+.1%} (target <= +10%)")
    if args.json:
        write_json_atomic(args.json, result, indent=2)


if __name__ == "__main__":
    main()
