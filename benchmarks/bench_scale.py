"""Scale: SelectPairs + budget_filter at 100k, 300k and 1M candidate rows, with datasets and with Ray Data.

Usage:
    python benchmarks/bench_scale.py --sizes 100000 300000 1000000 --json benchmarks/out/bench_scale.json
    python benchmarks/bench_scale.py --sizes 2000 --engines datasets-1 ray --runs 1   # a quick check
    python benchmarks/bench_scale.py --sizes 1000000 --runs 1 --cap-mb 3072     # does 1M fit in 3 GiB?

Data: candidate rows (8 responses, 384-dim L2-normalised float32 embeddings declared as fixed-length
lists, as EmbedResponses writes them) generated in Parquet shards of ``--shard-rows`` rows under
``--data-dir``, chunk by chunk, so the benchmark's own data never sits whole in memory. Each size's data
is deleted after its runs (1M rows are about 12 GB on disk).

Engines (each run is a fresh child process; the parent samples the memory of the child's whole process
tree every 0.2 s):
    datasets-1, datasets-2  ``load_dataset("parquet", data_files=shards)`` (its Arrow cache is built once
                            per size, before the timed runs), then ``select_pairs`` with ``num_proc`` 1
                            or 2 and ``budget_filter(pairs, 0.5)``; caching of maps is off.
    ray                     ``ray.init(num_cpus=2)`` (not timed), ``ray.data.read_parquet(shards)``, then
                            ``map_batches(SelectPairs(keep_skipped=True), batch_format="pyarrow")``, the
                            pair rows (embeddings dropped on the cluster) streamed to a memory-mapped
                            Arrow file on the driver's disk, skips dropped, ``budget_filter(0.5)``:
                            what ``curate(engine="ray")`` does (``real_hub.scale.ray_engine.collect``).

Timed: from the start of selection to the budget's kept pairs (rows/s = candidate rows / seconds).
Memory: peak over the run of the summed RSS of the child and all its descendants (Ray's raylet, GCS and
workers included), and its parts: RssAnon (the processes' own heap), RssFile (file pages mapped in:
memory-mapped Arrow files, shared libraries) and RssShmem (Ray's shared-memory object store).
``--cap-mb N`` runs each child in a cgroup v1 memory group of N MiB (root only): a run that finishes
there needs no more than N MiB, whatever its RSS, since the kernel reclaims clean file pages first.
Each cell is run ``--runs`` times (engines interleaved); the summary gives medians and the ratios of the
largest to the smallest size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
N_RESPONSES, DIMS, CHUNK = 8, 384, 10_000
ENGINES = ("datasets-1", "datasets-2", "ray")


# ------------------------------------------------------------------------------------------------ data


def generate(folder: Path, rows: int, shard_rows: int, seed: int = 0) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vector = pa.list_(pa.float32(), DIMS)
    schema = pa.schema(
        [
            ("prompt", pa.string()),
            ("responses", pa.list_(pa.string())),
            ("responses_embedding", pa.list_(vector)),
        ]
    )
    shards = []
    for shard, start in enumerate(range(0, rows, shard_rows)):
        path = folder / f"shard-{shard:05d}.parquet"
        with pq.ParquetWriter(path, schema) as writer:
            for lo in range(start, min(start + shard_rows, rows), CHUNK):
                n = min(CHUNK, start + shard_rows - lo, rows - lo)
                x = rng.standard_normal((n * N_RESPONSES, DIMS), dtype=np.float32)
                x /= np.linalg.norm(x, axis=1, keepdims=True)
                vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIMS)
                offsets = pa.array(np.arange(0, n * N_RESPONSES + 1, N_RESPONSES, dtype=np.int32))
                texts = pa.array(
                    [f"response {j} of prompt {i}" for i in range(lo, lo + n) for j in range(N_RESPONSES)]
                )
                table = pa.table(
                    {
                        "prompt": pa.array([f"prompt {i}" for i in range(lo, lo + n)]),
                        "responses": pa.ListArray.from_arrays(offsets, texts),
                        "responses_embedding": pa.ListArray.from_arrays(offsets, vectors),
                    },
                    schema=schema,
                )
                writer.write_table(table)
        shards.append(str(path))
    return shards


# ------------------------------------------------------------------------------------------- runs (child)


def run_datasets(shards: list[str], num_proc: int, cache: str) -> dict:
    import datasets
    from datasets import load_dataset

    from real_hub import budget_filter, select_pairs

    datasets.disable_progress_bars()
    ds = load_dataset("parquet", data_files=shards, split="train", cache_dir=cache)
    datasets.disable_caching()
    start = time.perf_counter()
    pairs, report = select_pairs(
        ds, "dissimilar", batch_size=1000, num_proc=num_proc if num_proc > 1 else None
    )
    kept, budget = budget_filter(pairs, 0.5)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(ds), "pairs": len(pairs), "kept": len(kept)}


def run_ray(shards: list[str]) -> dict:
    import logging

    import ray

    from real_hub import SelectPairs, budget_filter
    from real_hub.mapping import drop_skipped
    from real_hub.scale.ray_engine import collect
    from real_hub.schema import EMBEDDING_COLUMNS

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True
    start = time.perf_counter()
    ds = ray.data.read_parquet(shards)
    pairs = ds.map_batches(
        SelectPairs("dissimilar", keep_skipped=True), batch_size=1000, batch_format="pyarrow"
    )
    # as curate(engine="ray"): embeddings dropped on the cluster, pair rows streamed to a memory-mapped file
    rows, skipped = drop_skipped(collect(pairs, drop=EMBEDDING_COLUMNS))
    kept, budget = budget_filter(rows, 0.5)
    seconds = time.perf_counter() - start
    n = ds.count()
    ray.shutdown()
    return {"seconds": seconds, "rows": n, "pairs": len(rows), "kept": len(kept)}


def child(args: argparse.Namespace) -> None:
    shards = sorted(str(p) for p in Path(args.shards).glob("*.parquet"))
    if args.engine == "ray":
        out = run_ray(shards)
    else:
        out = run_datasets(shards, int(args.engine.split("-")[1]), args.cache)
    print("RESULT " + json.dumps(out), flush=True)


# ------------------------------------------------------------------------------------------------ parent


MEMORY_FIELDS = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file", "RssShmem:": "shmem"}


def tree_memory(pid: int) -> dict[str, int]:
    """Summed VmRSS, RssAnon, RssFile and RssShmem (bytes) of ``pid`` and all its descendants."""
    import psutil

    out = dict.fromkeys(MEMORY_FIELDS.values(), 0)
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    key = MEMORY_FIELDS.get(line.split(" ", 1)[0].split("\t", 1)[0])
                    if key is not None:
                        out[key] += int(line.split()[1]) * 1024
        except OSError:
            continue
    return out


def memory_cgroup(cap_mb: int | None) -> Path | None:
    """A cgroup (v1 memory controller) capping a run at ``cap_mb`` MiB of charged memory, or None.

    Charged memory includes the page cache a run reads, but the kernel reclaims clean file pages before it
    kills anything: a run that finishes under the cap does not need more than the cap, whatever its RSS.
    """
    if cap_mb is None:
        return None
    group = Path(f"/sys/fs/cgroup/memory/bench-scale-{os.getpid()}")
    try:
        group.mkdir(exist_ok=True)
        (group / "memory.limit_in_bytes").write_text(str(cap_mb * 2**20))
        swap = group / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(cap_mb * 2**20))
    except OSError as err:
        raise SystemExit(f"--cap-mb needs a writable cgroup v1 memory controller (root): {err}") from None
    return group


def measured_run(engine: str, shards: Path, cache: Path, group: Path | None = None) -> dict:
    command = [sys.executable, __file__, "--child", engine, "--shards", str(shards), "--cache", str(cache)]
    enter = None
    dropped = None
    if group is not None:
        procs = group / "cgroup.procs"
        dropped = drop_page_cache()  # else pages read before (warm_cache) stay charged to another group

        def enter() -> None:
            procs.write_text(str(os.getpid()))

    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=enter
    )
    peak = dict.fromkeys(MEMORY_FIELDS.values(), 0)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for key, value in tree_memory(proc.pid).items():
                peak[key] = max(peak[key], value)
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        if group is not None:
            failed = f"exit {proc.returncode} under the memory cap"
            return {"engine": engine, "failed": failed, **_peaks(peak)}
        raise RuntimeError(f"{engine} failed ({proc.returncode}):\n{err[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result.update(engine=engine, **_peaks(peak))
    if group is not None:
        result["cgroup_max_usage_mb"] = int((group / "memory.max_usage_in_bytes").read_text()) / 2**20
        result["cgroup_limit_hits"] = int((group / "memory.failcnt").read_text())
        result["page_cache_dropped"] = dropped
        (group / "memory.failcnt").write_text("0")
        (group / "memory.max_usage_in_bytes").write_text("0")
    result["rows_per_s"] = result["rows"] / result["seconds"]
    return result


def drop_page_cache() -> bool:
    """Empty the page cache (root only), so a capped run is charged for every file page it reads."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1")
        return True
    except OSError:
        return False


def _peaks(peak: dict[str, int]) -> dict[str, float]:
    return {f"peak_{key}_mb": round(value / 2**20, 1) for key, value in peak.items()}


def summarize_runs(runs: list[dict]) -> list[dict]:
    """Median seconds, rows/s and peaks per (size, engine); ratios of 1M-style largest to smallest size."""
    import statistics

    cells: dict[tuple[str, int], list[dict]] = {}
    for run in runs:
        if "failed" not in run:
            cells.setdefault((run["engine"], run["size"]), []).append(run)
    out = []
    for (engine, size), group in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        row = {"engine": engine, "size": size, "runs": len(group)}
        for key in ("seconds", "rows_per_s", *(f"peak_{k}_mb" for k in MEMORY_FIELDS.values())):
            row[key] = round(statistics.median(r[key] for r in group), 2)
        out.append(row)
    for engine in {r["engine"] for r in out}:
        sizes = sorted((r for r in out if r["engine"] == engine), key=lambda r: r["size"])
        small, large = sizes[0], sizes[-1]
        if small is large:
            continue
        out.append(
            {
                "engine": engine,
                "ratio": f"{large['size']} / {small['size']}",
                "time_per_row": round(
                    (large["seconds"] / large["size"]) / (small["seconds"] / small["size"]), 3
                ),
                **{
                    f"peak_{k}": round(large[f"peak_{k}_mb"] / small[f"peak_{k}_mb"], 3)
                    for k in MEMORY_FIELDS.values()
                    if small[f"peak_{k}_mb"]
                },
            }
        )
    return out


def warm_cache(shards: Path, cache: Path) -> float:
    """Build datasets' Arrow cache of the shards once (not part of the timed runs)."""
    code = (
        "import sys; from datasets import load_dataset; "
        f"load_dataset('parquet', data_files=sorted(sys.argv[1:]), split='train', cache_dir={str(cache)!r})"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *map(str, Path(shards).glob("*.parquet"))], check=True)
    return time.perf_counter() - start


def uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    from real_hub.atomic import write_json_atomic

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--runs", type=int, default=3, help="Runs per cell, engines interleaved (medians).")
    parser.add_argument("--cap-mb", type=int, default=None, help="Run each child in a memory cgroup (MiB).")
    parser.add_argument("--shard-rows", type=int, default=50_000)
    parser.add_argument("--data-dir", default=None, help="Where the shards go (default: a temporary folder).")
    parser.add_argument("--json", default=None, help="Write the results here (updated after every run).")
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--reuse-data", action="store_true", help="Use shards already in --data-dir.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--shards", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.engine = args.child
        child(args)
        return
    import tempfile

    root = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-scale-"))
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_before": uptime(),
        "cap_mb": args.cap_mb,
        "runs": [],
    }
    group = memory_cgroup(args.cap_mb)
    for size in args.sizes:
        folder, cache = root / f"rows-{size}", root / f"cache-{size}"
        start = time.perf_counter()
        if not (args.reuse_data and folder.exists()):
            generate(folder, size, args.shard_rows)
        print(f"{size} rows: generated in {time.perf_counter() - start:.0f} s", flush=True)
        if any(e.startswith("datasets") for e in args.engines):
            print(
                f"{size} rows: datasets' Arrow cache built in {warm_cache(folder, cache):.0f} s", flush=True
            )
        for repeat in range(args.runs):
            for engine in args.engines:
                result = measured_run(engine, folder, cache, group)
                result.update(size=size, repeat=repeat, load=uptime())
                report["runs"].append(result)
                print(json.dumps(result), flush=True)
                if args.json:
                    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                    write_json_atomic(args.json, report, indent=2)
        if not args.keep_data:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
    report["load_after"] = uptime()
    report["summary"] = summarize_runs(report["runs"])
    if group is not None:
        group.rmdir()
    if args.json:
        write_json_atomic(args.json, report, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
