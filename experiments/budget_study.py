r"""How much annotation does REAL save? The budget curve on all of HH-RLHF harmless-base, three embedders.

Usage::

    python experiments/budget_study.py                      # the study: writes its section of RESULTS.md
    python experiments/budget_study.py --dry-run --output-dir /tmp/budget-dry   # tiny models, seconds

Embeddings are cached under ``--output-dir`` (default ``experiments/output-budget/``, ignored by git).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HH_FILE = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

logger = logging.getLogger("budget_study")


@dataclass(frozen=True)
class Embedder:
    """One embedder of the study: its key, what the report calls it, and how to build it."""

    key: str
    label: str
    make: Callable[[], Any]


def embedders(dry_run: bool, tiny: Path | None = None) -> list[Embedder]:
    """The three embedders: packaged MiniLM, static model2vec distilled from it, SmolLM2 hidden states."""
    from real_hub import EmbedResponses

    if dry_run:
        assert tiny is not None
        st, lm = str(tiny / "sentence"), str(tiny / "causal")
        return [
            Embedder("minilm", "tiny sentence-transformer (dry run)", lambda: EmbedResponses(st)),
            Embedder("static", "static, distilled from it (dry run)",
                     lambda: EmbedResponses(st, backend="static")),
            Embedder("causal-lm", "tiny Llama hidden states (dry run)",
                     lambda: EmbedResponses(lm, backend="causal-lm")),
        ]  # fmt: skip
    return [
        Embedder("minilm", f"MiniLM (`{MINILM}`, packaged)", lambda: EmbedResponses()),
        Embedder(
            "static", "static model2vec, distilled from MiniLM (`backend=\"static\"`)",
            lambda: EmbedResponses(backend="static"),
        ),
        Embedder(
            "causal-lm", f"`{SMOLLM2}` last hidden states (`backend=\"causal-lm\"`, REAL's own)",
            lambda: EmbedResponses(SMOLLM2, backend="causal-lm", batch_size=16),
        ),
    ]  # fmt: skip


def load_pairs(path: Path, limit: int | None = None) -> tuple[Any, dict[str, Any]]:
    """HH transcripts as pairs (message prompts) and the conversion report."""
    from datasets import load_dataset

    from real_hub import to_pairs

    raw = load_dataset("json", data_files=str(path), split="train")
    pairs, report = to_pairs(raw, "hh")
    if limit is not None:
        pairs = pairs.select(range(min(limit, len(pairs))))
    return pairs, {"rows_in": report.rows_in, "rows_out": report.rows_out, "skipped": dict(report.skipped)}


def embed(out: Path, pairs: Any, embedder: Embedder) -> dict[str, Any]:
    """Chosen and rejected embeddings of every pair, cached in ``embeddings/<key>.npz`` (+ ``.json``)."""
    folder = out / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    npz, meta_path = folder / f"{embedder.key}.npz", folder / f"{embedder.key}.json"
    ids = np.asarray(pairs["source_id"], dtype=np.int64)
    if npz.exists() and meta_path.exists():
        cached = np.load(npz)
        if np.array_equal(cached["source_id"], ids):
            logger.info("cache hit: embeddings/%s", embedder.key)
            meta = json.loads(meta_path.read_text())
            return {"chosen": cached["chosen"], "rejected": cached["rejected"], "meta": meta, "cached": True}
    started = time.time()
    model = embedder.make()
    data = pairs.select_columns(["chosen", "rejected"])
    data = data.map(model, batched=True, batch_size=64, desc=f"Embedding ({embedder.key})")
    chosen = np.asarray(data["chosen_embedding"], dtype=np.float32)
    rejected = np.asarray(data["rejected_embedding"], dtype=np.float32)
    meta = {"key": embedder.key, "label": embedder.label, "dim": int(chosen.shape[1]), "pairs": len(ids),
            "seconds": round(time.time() - started, 1)}  # fmt: skip
    tmp = folder / f".{embedder.key}.tmp.npz"
    np.savez(tmp, chosen=chosen, rejected=rejected, source_id=ids)
    tmp.replace(npz)
    tmp_meta = folder / f".{embedder.key}.json.tmp"
    tmp_meta.write_text(json.dumps(meta, indent=1))
    tmp_meta.replace(meta_path)
    return {"chosen": chosen, "rejected": rejected, "meta": meta, "cached": False}


# ------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What sets the study's numbers (the dry run shrinks it)."""

    name: str
    limit: int | None  # pairs used (None: all)
    splits: int
    budgets: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)
    strategies: tuple[str, ...] = ("dissimilar", "random", "similar", "margin_high", "margin_low")
    seed: int = 0
    C: float = 1.0  # noqa: N815
    margin_seed: float = 0.05
    controls: tuple[tuple[str, dict[str, Any]], ...] = (
        ("C=0.1", {"C": 0.1}),
        ("C=10", {"C": 10.0}),
        ("unit-length differences", {"unit_differences": True}),
    )
    deciles: int = 10
    folds: int = 10


FULL = Settings("full", None, 20)
DRY = Settings("dry-run", 120, 3)


# ------------------------------------------------------------------------------------------- measure


def as_pairs(pairs: Any, vectors: dict[str, Any]) -> Any:
    """The pairs' prompts beside one embedder's vectors, as ``budget_curve`` reads them."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": pairs["prompt"],
            "chosen_embedding": vectors["chosen"],
            "rejected_embedding": vectors["rejected"],
        }
    )


def measure(data: Any, s: Settings) -> dict[str, Any]:
    """The budget curve, the learner controls and the label-noise view of one embedder's pairs."""
    from real_hub import agreement_by_similarity, budget_curve

    curve = budget_curve(
        data, strategies=s.strategies, budgets=s.budgets, splits=s.splits, seed=s.seed, C=s.C,
        margin_seed=s.margin_seed,
    )  # fmt: skip
    controls = {}
    for label, options in s.controls:
        options = {"C": s.C, **options}
        controls[label] = budget_curve(
            data, strategies=("dissimilar", "random", "similar"), budgets=(0.5, 1.0), splits=s.splits,
            seed=s.seed, **options,
        )  # fmt: skip
    plain_t = budget_curve(
        data, strategies=("dissimilar", "random", "similar"), budgets=(0.5, 1.0), splits=s.splits,
        seed=s.seed, C=s.C, interval_method="t", show_progress=False,
    )  # fmt: skip
    agreement = agreement_by_similarity(data, bins=s.deciles, folds=s.folds, seed=s.seed, C=s.C)
    return {"curve": curve, "controls": controls, "plain_t": plain_t, "agreement": agreement}


# ----------------------------------------------------------------------------------------------- main


def build_tiny(folder: Path) -> Path:
    """Tiny random models of ``tests/tiny_models.py``: a sentence-transformer and a Llama."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import tiny_models

    if not (folder / "causal" / "config.json").exists():
        tiny_models.save_tiny_sentence_transformer(folder / "st")
        (folder / "st" / "model").rename(folder / "sentence")
        tok = tiny_models.llama_tokenizer()
        tiny_models.save_tiny(tiny_models.tiny_llama(tok), tok, folder / "causal")
    return folder


def parse_args(argv: list[str] | None = None) -> Any:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny random models, 120 pairs, 3 splits")
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="cache (default experiments/output-budget)"
    )
    parser.add_argument(
        "--results", type=Path, default=None,
        help="RESULTS.md to write the study's section into (default experiments/RESULTS.md; dry run: in "
        "--output-dir)",
    )  # fmt: skip
    parser.add_argument("--data", type=Path, default=HH_FILE, help="HH-RLHF jsonl(.gz)")
    parser.add_argument("--splits", type=int, default=None, help="override the number of splits")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import dataclasses
    import os
    import sys

    from budget_report import write_report

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("httpx", "urllib3", "filelock", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    s = DRY if args.dry_run else FULL
    if args.splits is not None:
        s = dataclasses.replace(s, splits=args.splits)
    out = args.output_dir or ROOT / "experiments" / "output-budget"
    out.mkdir(parents=True, exist_ok=True)
    results = args.results or (out / "RESULTS.md" if args.dry_run else ROOT / "experiments" / "RESULTS.md")
    started, load_before = time.time(), os.getloadavg()
    tiny = None
    if args.dry_run:
        os.environ.setdefault("REAL_HUB_CACHE", str(out / "derived-models"))  # distilled static model
        tiny = build_tiny(out / "tiny")
    pairs, conversion = load_pairs(args.data, s.limit)
    logger.info("%d pairs", len(pairs))
    measured: dict[str, dict[str, Any]] = {}
    for embedder in embedders(args.dry_run, tiny):
        vectors = embed(out, pairs, embedder)
        logger.info("measuring %s", embedder.key)
        measured[embedder.key] = {
            "embedder": embedder,
            "meta": vectors["meta"],
            **measure(as_pairs(pairs, vectors), s),
        }
    summary = write_report(
        results, measured, s, conversion, args, elapsed=time.time() - started,
        load=(load_before, os.getloadavg()),
    )  # fmt: skip
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(out / "summary.json")
    for key, m in measured.items():
        m["curve"].save(out / "curves" / key, plot=False)
    logger.info("wrote %s and %s", results, out / "summary.json")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
