"""Benchmark REAL pair selection against a no-op map over the same embedding column.

Usage:
    python benchmarks/bench_select.py                      # 50,000 prompts x 8 candidates x 384 dims
    python benchmarks/bench_select.py --prompts 5000 --json out.json

The dataset (random L2-normalised float32 embeddings, declared as fixed-length float lists the way
EmbedResponses writes them) is built once with pyarrow, saved to a temporary folder and loaded back,
so that every map reads from memory-mapped Arrow. Each round runs every variant once, in turn
(alternating), caching disabled; the table reports the median of the rounds.

Variants:
    arrow-read       the read-only limit: a map over ``with_format("arrow")`` that sums every float of
                     ``responses_embedding`` (touching each value buffer once, zero-copy) and returns one
                     trivial column. No map that reads the embeddings can be faster.
    arrow-read-texts arrow-read plus decoding ``prompt`` and ``responses`` into Python strings: the floor of
                     a processor that reads the embeddings and writes the chosen texts out.
    noop             reads ``responses_embedding`` (decoded to Python lists by ``datasets``) and
                     returns one trivial column: what a naive batched map over that column pays.
    dissimilar       ``SelectPairs("dissimilar")`` as a user runs it (reads the Arrow column directly).
    centroid, random the other strategies.
    dissimilar-lists ``SelectPairs("dissimilar")`` fed a plain dict of Python lists (the batch copied
                     with ``dict(batch)``), i.e. the cost when the input is not Arrow-backed.
Targets: ``dissimilar <= 2 x noop`` and ``dissimilar <= 3 x arrow-read``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_dataset(prompts: int, candidates: int, dims: int, seed: int, folder: str):
    """Random candidates rows saved to ``folder`` and loaded back (Arrow on disk)."""
    from datasets import Dataset, Features, List, Value, load_from_disk

    rng = np.random.default_rng(seed)
    total = prompts * candidates
    vectors = np.empty((total, dims), dtype=np.float32)
    step = 100_000
    for start in range(0, total, step):
        block = rng.standard_normal((min(step, total - start), dims), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors[start : start + len(block)] = block
    inner = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dims)
    offsets = pa.array(np.arange(0, total + 1, candidates, dtype=np.int32))
    embeddings = pa.ListArray.from_arrays(offsets, inner)
    responses = pa.ListArray.from_arrays(
        offsets, pa.array([f"response {j} to prompt {i}" for i in range(prompts) for j in range(candidates)])
    )
    scores = pa.ListArray.from_arrays(offsets, pa.array(rng.random(total)))
    table = pa.table(
        {
            "prompt": pa.array([f"prompt {i}" for i in range(prompts)]),
            "responses": responses,
            "scores": scores,
            "responses_embedding": embeddings,
            "source_id": pa.array([f"bench-{i}" for i in range(prompts)]),
        }
    )
    features = Features(
        {
            "prompt": Value("string"),
            "responses": List(Value("string")),
            "scores": List(Value("float64")),
            "responses_embedding": List(List(Value("float32"), length=dims)),
            "source_id": Value("string"),
        }
    )
    Dataset(table).cast(features).save_to_disk(folder)
    del table, embeddings, inner, vectors
    return load_from_disk(folder)


def arrow_read(batch: pa.Table) -> dict:
    """Touch every embedding value once, straight from the Arrow buffers; return one trivial column."""
    column = batch.column("responses_embedding")
    for chunk in column.chunks:
        values = chunk.flatten().flatten()  # list<fixed_size_list<float>> -> float32, zero-copy slices
        np.asarray(values).sum()  # reads every value once (Python does not drop the call)
    return {"n": pc.list_value_length(column).to_numpy(zero_copy_only=False)}


def arrow_read_texts(batch: pa.Table) -> dict:
    """``arrow_read`` plus decoding ``prompt`` and ``responses`` to Python strings, as pair output needs."""
    batch.column("prompt").to_pylist()
    batch.column("responses").to_pylist()
    return arrow_read(batch)


def noop(batch: dict) -> dict:
    """Read the embedding column (decoded as datasets decodes it) and return a trivial column."""
    return {"n": [len(v) for v in batch["responses_embedding"]]}


class AsLists:
    """Feed the processor a plain dict of Python lists, as a non-Arrow source would."""

    def __init__(self, processor) -> None:
        self.processor = processor

    def __call__(self, batch: dict) -> dict:
        return self.processor(dict(batch))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=50_000)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants",
        default="arrow-read,arrow-read-texts,noop,dissimilar,centroid,random,dissimilar-lists",
        help="comma-separated subset of arrow-read,arrow-read-texts,noop,dissimilar,similar,centroid,random,"
        "dissimilar-lists",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here (else stdout)")
    args = parser.parse_args()

    import datasets

    from real_hub.real.select import SelectPairs

    datasets.disable_caching()
    datasets.logging.disable_progress_bar()
    variants = args.variants.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-select-") as folder:
        started = time.perf_counter()
        ds = build_dataset(args.prompts, args.candidates, args.dims, args.seed, folder)
        build_s = time.perf_counter() - started
        print(f"built {len(ds)} rows in {build_s:.1f}s", file=sys.stderr)

        def function(name: str):
            if name == "noop":
                return noop
            if name == "arrow-read":
                return arrow_read
            if name == "arrow-read-texts":
                return arrow_read_texts
            if name == "dissimilar-lists":
                return AsLists(SelectPairs("dissimilar"))
            return SelectPairs(name)

        times: dict[str, list[float]] = {v: [] for v in variants}
        rows_out: dict[str, int] = {}
        for round_ in range(args.rounds):
            for name in variants:
                started = time.perf_counter()
                source = ds.with_format("arrow") if name.startswith("arrow-read") else ds
                out = source.map(
                    function(name),
                    batched=True,
                    batch_size=args.batch_size,
                    remove_columns=ds.column_names,
                    load_from_cache_file=False,
                )
                times[name].append(time.perf_counter() - started)
                rows_out[name] = len(out)
                del out
                print(f"round {round_ + 1}: {name:<17} {times[name][-1]:7.2f}s", file=sys.stderr)

    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians.get("noop")
    limit = medians.get("arrow-read")
    results = {
        "config": {
            "prompts": args.prompts,
            "candidates": args.candidates,
            "dims": args.dims,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "build_s": round(build_s, 2),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pyarrow": pa.__version__,
            "datasets": datasets.__version__,
        },
        "variants": {
            name: {
                "median_s": round(medians[name], 3),
                "runs_s": [round(t, 3) for t in times[name]],
                "ratio_to_noop": round(medians[name] / base, 3) if base else None,
                "ratio_to_arrow_read": round(medians[name] / limit, 3) if limit else None,
                "rows_out": rows_out[name],
            }
            for name in variants
        },
    }
    print(f"\n{'variant':<18}{'median s':>10}{'x noop':>9}{'x arrow':>9}{'rows out':>10}", file=sys.stderr)
    for name, row in results["variants"].items():
        ratio = f"{row['ratio_to_noop']:.2f}" if row["ratio_to_noop"] is not None else "-"
        to_limit = f"{row['ratio_to_arrow_read']:.2f}" if row["ratio_to_arrow_read"] is not None else "-"
        print(
            f"{name:<18}{row['median_s']:>10.2f}{ratio:>9}{to_limit:>9}{row['rows_out']:>10}", file=sys.stderr
        )
    if base and "dissimilar" in medians:
        ratio = medians["dissimilar"] / base
        verdict = "meets" if ratio <= 2 else "misses"
        print(f"dissimilar / noop = {ratio:.2f} ({verdict} the <= 2x target)", file=sys.stderr)
    if limit and "dissimilar" in medians:
        ratio = medians["dissimilar"] / limit
        verdict = "meets" if ratio <= 3 else "misses"
        print(f"dissimilar / arrow-read = {ratio:.2f} ({verdict} the <= 3x target)", file=sys.stderr)
    text = json.dumps(results, indent=2)
    if args.json:
        from real_hub.atomic import write_text_atomic

        write_text_atomic(args.json, text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
