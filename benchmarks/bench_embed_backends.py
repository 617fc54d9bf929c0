"""Texts per second of each EmbedResponses backend, and how much of REAL's selection each one keeps.

Backends, side by side in one process (each through ``ds.map(EmbedResponses(...), batched=True)``):

    torch      all-MiniLM-L6-v2 on torch (the default; the reference for agreement)
    onnx       the same model exported once to ONNX, run by ONNX Runtime (st_backend="onnx")
    openvino   the same export run by OpenVINO (st_backend="openvino")
    static     model2vec static embeddings distilled once from MiniLM (backend="static", 256 dims)

Throughput: the HH-RLHF harmless-base test file (2,303 pairs, 4,606 responses), ``--runs`` rounds in
which every backend runs once in turn (caching off); then 50,000 responses (25,000 pairs: the HH pairs
repeated, each copy's texts given a " [copy k]" suffix so that no text repeats within a batch and
nothing is deduplicated), ``--large-runs`` rounds for the fast backends and ``--slow-large-runs`` for
torch/ONNX/OpenVINO. Model loading, ONNX export and distillation happen before timing (their one-off
cost is reported separately). Medians of the rounds.

Agreement with torch MiniLM (from the HH run and the demo set):
    spearman           rank correlation of the 2,303 pair similarities cos(chosen, rejected)
    jaccard@25%/50%    overlap of the pairs ``budget_filter`` keeps at those budgets
    same dissimilar    share of demo prompts whose ``SelectPairs("dissimilar")`` pair is identical

    python benchmarks/bench_embed_backends.py [--runs 3] [--large 50000] [--json out.json]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from real_hub import EmbedResponses, budget_filter, load_demo, select_pairs, to_pairs  # noqa: E402
from real_hub.atomic import write_json_atomic  # noqa: E402
from real_hub.models import DEFAULT_EMBEDDER  # noqa: E402

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"

BACKENDS = {
    "torch": {"device": "cpu"},
    "onnx": {"device": "cpu", "st_backend": "onnx"},
    "openvino": {"device": "cpu", "st_backend": "openvino"},
    "static": {"device": "cpu", "backend": "static"},
}
FAST = {"static"}
LABELS = {
    "torch": "MiniLM-L6, torch",
    "onnx": "MiniLM-L6, ONNX Runtime (st_backend='onnx')",
    "openvino": "MiniLM-L6, OpenVINO (st_backend='openvino')",
    "static": "static, distilled from MiniLM (backend='static', 256 dims)",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] load {os.getloadavg()[0]:.1f}  {msg}", file=sys.stderr, flush=True)


def suffixed(pairs: datasets.Dataset, total_texts: int) -> datasets.Dataset:
    """``total_texts / 2`` pairs: the pairs repeated, copy ``k`` of each text suffixed with `` [copy k]``."""
    n = total_texts // 2
    chosen, rejected = list(pairs["chosen"]), list(pairs["rejected"])
    m = len(chosen)

    def tag(text: str, i: int) -> str:
        return text if i < m else f"{text} [copy {i // m}]"

    return datasets.Dataset.from_dict(
        {
            "prompt": [f"p{i}" for i in range(n)],
            "chosen": [tag(chosen[i % m], i) for i in range(n)],
            "rejected": [tag(rejected[i % m], i) for i in range(n)],
        }
    )


def timed_map(ds: datasets.Dataset, emb: EmbedResponses) -> tuple[float, datasets.Dataset]:
    t = time.perf_counter()
    out = ds.map(emb, batched=True, batch_size=1000, load_from_cache_file=False)
    return time.perf_counter() - t, out


def pair_sims(out: datasets.Dataset) -> np.ndarray:
    table = out.with_format("numpy")
    c = np.stack(table["chosen_embedding"]).astype(np.float64)
    r = np.stack(table["rejected_embedding"]).astype(np.float64)
    return np.einsum("ij,ij->i", c, r)


def kept(sims: np.ndarray, budget: float) -> set[int]:
    ds = datasets.Dataset.from_dict({"pair_id": np.arange(len(sims)), "similarity": sims})
    out, _ = budget_filter(ds, budget, "dissimilar")
    return set(out["pair_id"])


def demo_pairs(emb: EmbedResponses) -> dict[str, frozenset[str]]:
    demo = load_demo()
    embedded = demo.map(emb, batched=True, load_from_cache_file=False)
    pairs, _ = select_pairs(embedded, "dissimilar")
    return {str(p): frozenset((c, r)) for p, c, r in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"])}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--runs", type=int, default=3, help="Rounds of each timed phase.")
    parser.add_argument("--sample-pairs", type=int, default=250, help="HH pairs in the all-backend slice.")
    parser.add_argument("--large", type=int, default=50_000, help="Texts in the large run (0: skip).")
    parser.add_argument(
        "--slow-runs",
        type=int,
        default=0,
        help="Rounds of the whole-file and large runs for non-static backends.",
    )
    parser.add_argument("--limit", type=int, default=None, help="First N HH pairs only (smoke test).")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    datasets.disable_caching()
    datasets.disable_progress_bars()
    names = args.backends.split(",")
    load_start = os.getloadavg()
    started = time.time()

    raw = datasets.load_dataset("json", data_files=args.data, split="train")
    pairs, _ = to_pairs(raw)
    pairs = pairs.select_columns(["prompt", "chosen", "rejected"])
    if args.limit:
        pairs = pairs.select(range(min(args.limit, len(pairs))))
    texts = 2 * len(pairs)
    log(f"HH: {len(pairs)} pairs, {texts} texts")

    procs: dict[str, EmbedResponses] = {}
    setup_s: dict[str, float] = {}
    for name in names:
        t = time.perf_counter()
        procs[name] = EmbedResponses(DEFAULT_EMBEDDER, **BACKENDS[name])
        procs[name].encoder().encode(["warm-up text"] * 8)
        setup_s[name] = time.perf_counter() - t
        log(
            f"{name}: ready in {setup_s[name]:.1f} s (with export/distillation unless cached), "
            f"dim {procs[name].dim}"
        )

    result: dict = {
        "texts_hh": texts,
        "setup_seconds": setup_s,
        "dims": {n: procs[n].dim for n in names},
        "load_average_start": load_start,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }

    def save() -> None:
        result["load_average_end"] = os.getloadavg()
        result["wall_s"] = time.time() - started
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.json, result, indent=2)

    # 1. every backend, side by side, on a slice small enough for the slow ones
    sample = pairs.select(range(min(args.sample_pairs, len(pairs))))
    sample_times: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(args.runs):
        for name in names:
            seconds, _ = timed_map(sample, procs[name])
            sample_times[name].append(seconds)
            log(f"slice round {round_ + 1} {name}: {seconds:.2f} s, {2 * len(sample) / seconds:.0f} texts/s")
    result["texts_slice"] = 2 * len(sample)
    result["slice_seconds"] = sample_times
    save()

    # 2. the whole HH file and the 50,000 texts, fast backends only (the slow ones: --slow-runs)
    hh_times: dict[str, list[float]] = {n: [] for n in names}
    large_times: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, datasets.Dataset] = {}
    big = suffixed(pairs, args.large) if args.large else None
    for round_ in range(args.runs):
        for name in names:
            if name not in FAST and round_ >= args.slow_runs:
                continue
            seconds, out = timed_map(pairs, procs[name])
            hh_times[name].append(seconds)
            outputs.setdefault(name, out)
            log(f"HH round {round_ + 1} {name}: {seconds:.2f} s, {texts / seconds:.0f} texts/s")
            if big is not None:
                seconds, _ = timed_map(big, procs[name])
                large_times[name].append(seconds)
                log(f"large round {round_ + 1} {name}: {seconds:.2f} s, {len(big) * 2 / seconds:.0f} texts/s")
    result["texts_large"] = 2 * len(big) if big is not None else 0
    result["hh_seconds"] = hh_times
    result["large_seconds"] = large_times
    save()

    # 3. agreement with torch MiniLM: the slow backends embed the whole HH file once more if not yet done
    agreement: dict[str, dict[str, float]] = {}
    if "torch" in names and "torch" not in outputs:
        seconds, outputs["torch"] = timed_map(pairs, procs["torch"])
        hh_times["torch"].append(seconds)
        log(f"HH (for agreement) torch: {seconds:.2f} s, {texts / seconds:.0f} texts/s")
    if "torch" in outputs:
        ref = pair_sims(outputs["torch"])
        ref_kept = {b: kept(ref, b) for b in (0.25, 0.5)}
        ref_demo = demo_pairs(procs["torch"])
        for name in sorted(names, key=lambda n: n not in outputs):  # partial runs still report
            if name not in outputs:
                seconds, outputs[name] = timed_map(pairs, procs[name])
                hh_times[name].append(seconds)
                log(f"HH (for agreement) {name}: {seconds:.2f} s, {texts / seconds:.0f} texts/s")
            sims = pair_sims(outputs[name])
            row: dict[str, float] = {"spearman": float(spearmanr(ref, sims).statistic)}
            for b in (0.25, 0.5):
                k = kept(sims, b)
                row[f"jaccard@{int(b * 100)}%"] = len(k & ref_kept[b]) / len(k | ref_kept[b])
            mine = demo_pairs(procs[name])
            common = set(mine) & set(ref_demo)
            row["same_dissimilar_pair"] = sum(mine[p] == ref_demo[p] for p in common) / len(common)
            row["demo_prompts"] = len(common)
            agreement[name] = row
            result["agreement_vs_torch"] = agreement
            save()
            log(f"agreement {name}: {row}")

    def med(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    result["slice_texts_per_s"] = {n: 2 * len(sample) / med(v) for n, v in sample_times.items() if v}
    result["hh_texts_per_s"] = {n: texts / med(v) for n, v in hh_times.items() if v}
    result["large_texts_per_s"] = {n: result["texts_large"] / med(v) for n, v in large_times.items() if v}
    save()

    def table(title: str, count: int, times: dict[str, list[float]]) -> None:
        base = med(times.get("torch", []))
        print(f"| {title}: {count:,} texts | dims | median s (runs) | texts/s | x torch |")
        print("| --- | --- | --- | --- | --- |")
        for n in names:
            m = med(times[n])
            if m is None:
                continue
            ratio = f"{base / m:.1f}" if base else "-"
            runs = " ".join(f"{t:.2f}" for t in times[n])
            print(f"| {LABELS[n]} | {procs[n].dim} | {m:.2f} ({runs}) | {count / m:,.0f} | {ratio} |")
        print()

    table("all backends, first HH pairs", result["texts_slice"], sample_times)
    table("HH file", texts, hh_times)
    if result["texts_large"]:
        table("HH repeated with suffixes", result["texts_large"], large_times)
    print()
    print(
        "| backend | Spearman of 2,303 HH pair similarities | Jaccard of pairs kept @25% | @50% | "
        "demo prompts with the same dissimilar pair |"
    )
    print("| --- | --- | --- | --- | --- |")
    for n, row in agreement.items():
        print(
            f"| {LABELS[n]} | {row['spearman']:.3f} | {row['jaccard@25%']:.3f} | {row['jaccard@50%']:.3f} | "
            f"{row['same_dissimilar_pair']:.0%} of {row['demo_prompts']} |"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json, result, indent=2)


if __name__ == "__main__":
    main()
