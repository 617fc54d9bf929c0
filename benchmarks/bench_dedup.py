"""deduplicate() at 100k and 1M prompts, side by side with semhash: time, peak memory, recall and precision.

Usage:
    python benchmarks/bench_dedup.py --sizes 100000 1000000 --runs 3 --json benchmarks/out/bench_dedup.json
    python benchmarks/bench_dedup.py --small          # a quick check: 3,000 prompts, one run of each tool

Data (made by this script, seeded): HH-RLHF prompts with planted duplicates. The distinct ("base") prompts
are the first human turns of the HH harmless-base test file (distinct once normalised), then, to reach the
size, prompts sampled from a word-bigram model of those turns (HH's vocabulary and phrases, 12 to 60 words,
all distinct once normalised; shorter samples are word salads of HH's commonest phrases, near-duplicates of
one another more often than real prompts are). Of ``--size`` rows, ``--copies`` (5%)
are copies of a random base prompt with other case and whitespace, ``--paraphrases`` (5%) light
paraphrases of one (one or two edits: a word dropped, two neighbours swapped, a filler word inserted, a
greeting before or a thanks after). All rows are shuffled, so a plant may come before its base. A base and
its plants form a family.

Tools (each run a fresh child process; the parent samples the RSS of the child's process tree every 0.2 s):
    real-hub  ``deduplicate(ds, "text", threshold=0.9, embedder=EmbedResponses(MODEL, backend="static"))``
              on the prompts as a memory-mapped Arrow dataset
    semhash   ``SemHash.from_records(records, model=StaticModel(MODEL)).self_deduplicate(0.9)`` in its own
              virtual environment (``benchmarks/.venv-semhash``, made here: ``pip install semhash==0.5.0``)

Both embed with the same model: all-MiniLM-L6-v2 distilled by real-hub to a static model2vec model
(saved once to a folder that both load). Timed: the call (model loaded and warmed before). Memory: the
peak RSS of the child's tree, and the RSS just before the call (the input in memory).

Quality, against the families: a removal is right when the removed row and the row it was kept for are
in one family. recall = right removals / (rows - families), precision = right removals / removals: a
lower bound, since sampled prompts that happen to be near-duplicates of each other at the threshold count
as wrong (``wrong_between_hh`` counts those between two real HH turns). Both tools embed alike, so the
differences come from the search and the grouping. Overlap: the removed rows both tools remove, and each
alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
SEMHASH_VENV = ROOT / "benchmarks" / ".venv-semhash"
SEMHASH_PIN = "semhash==0.5.0"
DRIVER = ROOT / "benchmarks" / "_semhash_driver.py"
FILLERS = ["please", "actually", "really", "just", "honestly", "quickly"]
GREETINGS = ["Hey,", "Hi,", "Quick question:", "Hello!", "So,"]
THANKS = ["Thanks.", "Any ideas?", "Thank you!", "Please help.", "Thanks in advance."]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] load {os.getloadavg()[0]:.1f}  {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ data


def hh_turns() -> list[str]:
    """The first human turn of every HH test prompt, distinct once normalised."""
    from datasets import load_dataset

    from real_hub import to_pairs

    raw = load_dataset("json", data_files=str(HH), split="train")
    pairs, _ = to_pairs(raw)
    seen: dict[str, str] = {}
    for prompt in pairs["prompt"]:
        text = next(m["content"] for m in prompt if m["role"] == "user").strip()
        seen.setdefault(" ".join(text.casefold().split()), text)
    return list(seen.values())


def bigram_texts(turns: list[str], n: int, rng: np.random.Generator, existing: set[str]) -> list[str]:
    """``n`` distinct texts from a word-bigram model of ``turns`` (12 to 60 words), vectorised over texts."""
    vocab: dict[str, int] = {"<s>": 0, "</s>": 1}
    follow: dict[int, list[int]] = {}
    for turn in turns:
        ids = [0] + [vocab.setdefault(w, len(vocab)) for w in turn.split()] + [1]
        for a, b in zip(ids, ids[1:]):
            follow.setdefault(a, []).append(b)
    words = np.array(list(vocab), dtype=object)
    offsets = np.zeros(len(vocab) + 1, dtype=np.int64)
    for w in range(len(vocab)):
        offsets[w + 1] = offsets[w] + len(follow.get(w, [1]))
    successors = np.concatenate([np.array(follow.get(w, [1]), dtype=np.int64) for w in range(len(vocab))])
    out: list[str] = []
    seen = set(existing)
    while len(out) < n:
        m = int((n - len(out)) * 1.1) + 16
        lengths = rng.integers(12, 61, size=m)
        cur = np.zeros(m, dtype=np.int64)
        grid = np.zeros((m, 60), dtype=np.int64)
        for step in range(60):
            span = offsets[cur + 1] - offsets[cur]
            nxt = successors[offsets[cur] + (rng.random(m) * span).astype(np.int64)]
            # an end of sentence before the length is reached starts a new sentence
            starts = successors[offsets[0] + (rng.random(m) * (offsets[1] - offsets[0])).astype(np.int64)]
            nxt = np.where(nxt == 1, starts, nxt)
            grid[:, step] = nxt
            cur = nxt
        for row, length in zip(grid, lengths):
            text = " ".join(words[row[:length]])
            key = " ".join(text.casefold().split())
            if key not in seen:
                seen.add(key)
                out.append(text)
                if len(out) == n:
                    break
    return out


def vary_case_and_space(text: str, rng: random.Random) -> str:
    case = rng.choice([str.upper, str.lower, str.title, str.swapcase])
    words = case(text).split()
    seps = [rng.choice([" ", "  ", "\t", " \n "]) for _ in words[1:]]
    return "  " + words[0] + "".join(s + w for s, w in zip(seps, words[1:])) if words else text


def paraphrase(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(rng.choice([1, 1, 2])):
        op = rng.choice(["drop", "swap", "filler", "greet", "thanks"])
        if op == "drop" and len(words) > 3:
            words.pop(rng.randrange(1, len(words)))
        elif op == "swap" and len(words) > 3:
            i = rng.randrange(1, len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == "filler":
            words.insert(rng.randrange(1, len(words) + 1), rng.choice(FILLERS))
        elif op == "greet":
            words.insert(0, rng.choice(GREETINGS))
        else:
            words.append(rng.choice(THANKS))
    out = " ".join(words)
    return out if out != text else out + " " + rng.choice(THANKS)


def make_data(size: int, copies: float, paraphrases: float, seed: int, path: Path) -> dict:
    """Write ``size`` prompts (text, family, kind) to a Parquet file; return its description."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    n_copy, n_para = int(size * copies), int(size * paraphrases)
    n_base = size - n_copy - n_para
    turns = hh_turns()
    bases = turns[:n_base]
    existing = {" ".join(t.casefold().split()) for t in bases}
    bases += bigram_texts(turns, n_base - len(bases), rng, existing)
    sources = rng.integers(0, n_base, size=n_copy + n_para)
    texts = list(bases)
    families = list(range(n_base))
    kinds = ["base"] * n_base
    for k, src in enumerate(sources.tolist()):
        if k < n_copy:
            texts.append(vary_case_and_space(bases[src], prng))
            kinds.append("copy")
        else:
            texts.append(paraphrase(bases[src], prng))
            kinds.append("paraphrase")
        families.append(src)
    order = rng.permutation(size)
    table = pa.table(
        {
            "text": [texts[i] for i in order],
            "family": np.asarray(families, dtype=np.int64)[order],
            "kind": [kinds[i] for i in order],
        }
    )
    pq.write_table(table, path)
    return {
        "rows": size,
        "bases": n_base,
        "hh_turns": min(len(turns), n_base),
        "copies": n_copy,
        "paraphrases": n_para,
    }


# ------------------------------------------------------------------------------------------------ tools


def ensure_semhash() -> Path:
    """semhash's Python, its virtual environment made on first use."""
    python = SEMHASH_VENV / "bin" / "python"
    probe = [str(python), "-c", "import semhash, model2vec, pyarrow"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    log(f"creating {SEMHASH_VENV} ({SEMHASH_PIN}, pyarrow) ...")
    subprocess.run([sys.executable, "-m", "venv", str(SEMHASH_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", SEMHASH_PIN, "pyarrow"], check=True)
    return python


def export_model(folder: Path) -> Path:
    """real-hub's default static model (all-MiniLM-L6-v2 distilled once), saved where semhash can load it."""
    from real_hub import EmbedResponses

    target = folder / "static-minilm"
    if not (target / "config.json").exists():
        EmbedResponses(backend="static").encoder().model.save_pretrained(str(target))
    return target


def child(data: str, model: str, threshold: float, out: str) -> None:
    """The real-hub run, in this child process."""
    import datasets

    from real_hub import EmbedResponses, deduplicate

    datasets.disable_progress_bars()
    os.environ["REAL_HUB_DISABLE_PROGRESS_BARS"] = "1"
    cache = str(Path(out).parent / "c")
    ds = datasets.load_dataset("parquet", data_files=data, split="train", cache_dir=cache)
    embed = EmbedResponses(model, backend="static")
    embed.encoder().encode(["warm-up"])
    before = _rss_mb()
    start = time.perf_counter()
    _, report = deduplicate(ds, "text", threshold=threshold, embedder=embed)
    seconds = time.perf_counter() - start
    removed = [[r, g.kept, e] for g in report.groups for r, e in zip(g.removed, g.exact)]
    report_json = {
        "tool": "real-hub",
        "seconds": seconds,
        "rss_before_mb": before,
        "rows": len(ds),
        "index": report.index,
        "steps": report.seconds,
        "removed": removed,
    }
    Path(out).write_text(json.dumps(report_json))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1.0


def tree_rss(pid: int) -> int:
    import psutil

    total = 0
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def measured(command: list[str], out: Path) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "REAL_HUB_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed ({proc.returncode}):\n{err[-4000:]}")
    result = json.loads(out.read_text())
    result["peak_rss_mb"] = round(peak / 2**20, 1)
    return result


# ------------------------------------------------------------------------------------------------ scoring


def score(result: dict, family: np.ndarray, hh_families: int) -> dict:
    """Recall and precision against the planted families; ``wrong_between_hh``: wrong removals of one HH
    first turn for another (HH's own near-duplicate questions, unplanted), the rest involve sampled text."""
    removed = result["removed"]
    rows = np.array([r[0] for r in removed], dtype=np.int64)
    kept_for = np.array([r[1] for r in removed], dtype=np.int64)
    same = family[rows] == family[kept_for] if len(rows) else np.zeros(0, dtype=bool)
    right = int(same.sum())
    possible = len(family) - len(np.unique(family))
    between_hh = ~same & (family[rows] < hh_families) & (family[kept_for] < hh_families)
    return {
        "removed": len(rows),
        "exact": sum(bool(r[2]) for r in removed),
        "right": right,
        "wrong_between_hh": int(between_hh.sum()),
        "recall": round(right / possible, 4) if possible else None,
        "precision": round(right / len(rows), 4) if len(rows) else None,
    }


def summarize(runs: list[dict], size: int, tools: list[str], removed_by: dict[str, set[int]]) -> list[dict]:
    """Medians of time and memory per tool at ``size``, its quality, and the overlap of what each removes."""
    out = []
    for tool in tools:
        mine = [r for r in runs if r["size"] == size and r["tool"] == tool]
        row = {"size": size, "tool": tool, "runs": len(mine)}
        row.update(
            {k: statistics.median(r[k] for r in mine) for k in ("seconds", "peak_rss_mb", "rss_before_mb")}
        )
        row.update({k: mine[0][k] for k in ("removed", "exact", "recall", "precision", "wrong_between_hh")})
        out.append(row)
    if len(removed_by) == 2:
        a, b = removed_by["real-hub"], removed_by["semhash"]
        overlap = {"both": len(a & b), "real-hub only": len(a - b), "semhash only": len(b - a)}
        overlap["jaccard"] = round(len(a & b) / max(1, len(a | b)), 4)
        out.append({"size": size, "overlap": overlap})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3, help="Runs per size and tool, tools interleaved.")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--copies", type=float, default=0.05)
    parser.add_argument("--paraphrases", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tools", nargs="+", default=["real-hub", "semhash"], choices=["real-hub", "semhash"]
    )
    parser.add_argument("--small", action="store_true", help="A quick check: --sizes 3000 --runs 1.")
    parser.add_argument("--work-dir", default=None, help="Data and outputs (default: a temporary folder).")
    parser.add_argument("--json", default=None, help="Write the results here (updated after every run).")
    parser.add_argument("--child", nargs=2, metavar=("DATA", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.threshold, args.out)
        return
    if args.small:
        args.sizes, args.runs = [3000], 1
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-dedup-"))
    work.mkdir(parents=True, exist_ok=True)
    semhash_python = ensure_semhash() if "semhash" in args.tools else None
    model = export_model(work)
    result: dict = {
        "threshold": args.threshold,
        "semhash": SEMHASH_PIN,
        "embedder": "sentence-transformers/all-MiniLM-L6-v2 distilled to model2vec (256 dims), both tools",
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "data": {},
        "runs": [],
        "summary": [],
    }
    started = time.time()

    def save() -> None:
        result["load_average_end"] = os.getloadavg()
        result["wall_s"] = round(time.time() - started, 1)
        if args.json:
            from real_hub.atomic import write_json_atomic

            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.json, result, indent=2)

    import pyarrow.parquet as pq

    for size in args.sizes:
        path = work / f"prompts-{size}.parquet"
        result["data"][size] = make_data(size, args.copies, args.paraphrases, args.seed, path)
        family = pq.read_table(path, columns=["family"]).column("family").to_numpy()
        log(f"{size} prompts: {result['data'][size]}")
        removed_by: dict[str, set[int]] = {}
        for run in range(args.runs):
            for tool in args.tools:
                out = work / f"{tool}-{size}-{run}.json"
                common = ["--threshold", str(args.threshold), "--out", str(out)]
                if tool == "real-hub":
                    command = [sys.executable, __file__, "--child", str(path), str(model), *common]
                else:
                    command = [str(semhash_python), str(DRIVER), "--data", str(path), "--model", str(model)]
                    command += common
                run_result = measured(command, out)
                quality = score(run_result, family, result["data"][size]["hh_turns"])
                removed_by.setdefault(tool, {r[0] for r in run_result["removed"]})
                entry = {
                    "tool": tool,
                    "size": size,
                    "run": run,
                    "seconds": round(run_result["seconds"], 2),
                    "peak_rss_mb": run_result["peak_rss_mb"],
                    "rss_before_mb": round(run_result["rss_before_mb"], 1),
                    **quality,
                    "index": run_result.get("index"),
                    "steps": run_result.get("steps"),
                    "load_average": os.getloadavg()[0],
                }
                result["runs"].append(entry)
                log(
                    f"{tool} {size} run {run + 1}: {entry['seconds']} s, peak {entry['peak_rss_mb']} MB, "
                    f"removed {quality['removed']}, recall {quality['recall']}, "
                    f"precision {quality['precision']}"
                )
                out.unlink()
                save()
        result["summary"] += summarize(result["runs"], size, args.tools, removed_by)
        save()
        path.unlink()
        shutil.rmtree(work / "c", ignore_errors=True)
    for line in result["summary"]:
        print(json.dumps(line))
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
