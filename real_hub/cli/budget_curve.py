"""``real-hub budget-curve``: how much annotation a selection saves on labelled pairs, as files."""

from __future__ import annotations

import argparse
from typing import Any

from ._utils import CLIError, add_common_options, format_table

EXAMPLES = """examples:
  # HH-RLHF transcripts: embed with MiniLM, 20 prompt-grouped splits, dissimilar / random / similar
  real-hub budget-curve ../shared/data/hh-rlhf-harmless-base/test.jsonl.gz --output-dir hh-curve

  # the margin rules of later papers too, REAL's own LLM embeddings, more splits
  real-hub budget-curve pairs.jsonl --embedder HuggingFaceTB/SmolLM2-135M-Instruct \\
      --embed-backend causal-lm --strategies dissimilar,random,similar,margin_high,margin_low \\
      --splits 30 --output-dir curve

  # pairs that already hold embeddings (all pairs curated with --keep-embeddings): nothing is embedded
  real-hub budget-curve all-pairs/ --config dissimilar --output-dir all-pairs/

Writes budget_curve.json (every split's accuracy; BudgetCurve.load reads it), budget_curve.md (the tables)
and budget_curve.png (accuracy against budget). The Space shows them for a folder that holds them, and
`real-hub curate --budget-curve DIR/budget_curve.json` cites them in the dataset card.
"""


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or not all(0 < v <= 1 for v in values):
        raise CLIError(
            f"--budgets: expected comma-separated fractions in (0, 1], e.g. 0.1,0.5,1, got {text!r}"
        )
    return values


def _names(text: str, flag: str, count: int | None = None) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names or (count is not None and len(names) != count):
        what = f"{count} comma-separated names" if count else "comma-separated names"
        raise CLIError(f"{flag}: expected {what}, got {text!r}")
    return names


def register(sub: Any) -> None:
    """Add the ``budget-curve`` command."""
    from ..encoders import BACKENDS
    from ..models import DEFAULT_EMBEDDER

    p = sub.add_parser(
        "budget-curve",
        help="Measure how much annotation a selection saves on labelled pairs (accuracy against budget).",
        description="Split labelled pairs 50/50 by prompt, many times; keep each strategy's budget share of "
        "the training half, fit a linear Bradley-Terry reward on the response embeddings and score it on "
        "the held-out half. Pairs are converted (HH-RLHF transcripts, TRL pairs, ...) and embedded when "
        "they hold no embeddings.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "data", nargs="+", metavar="DATA", help="Data file(s), a curated folder, or a Hub dataset id."
    )
    p.add_argument("--output-dir", required=True, help="Write budget_curve.json, .md and .png here.")
    p.add_argument(
        "--embedder",
        default=DEFAULT_EMBEDDER,
        metavar="MODEL",
        help="Embedding model (default: %(default)s).",
    )
    p.add_argument(
        "--embed-backend", default="auto", choices=BACKENDS, help="Embedding backend (default: %(default)s)."
    )
    p.add_argument(
        "--splits", type=int, default=20, help="Prompt-grouped 50/50 splits (default: %(default)s)."
    )
    p.add_argument(
        "--strategies",
        default="dissimilar,random,similar",
        help="Comma-separated: dissimilar, similar, random, margin_high, margin_low (default: %(default)s).",
    )
    p.add_argument(
        "--budgets",
        default="0.1,0.25,0.5,0.75,1",
        help="Comma-separated shares to keep (default: %(default)s).",
    )
    p.add_argument("--seed", type=int, default=0, help="Seed of the splits and draws (default: %(default)s).")
    p.add_argument(
        "--learner-c",
        type=float,
        default=1.0,
        help="Inverse L2 strength of the learner (default: %(default)s).",
    )
    p.add_argument(
        "--margin-seed",
        type=float,
        default=0.05,
        help="Share of the training half the margin rules' reward is fit on (default: %(default)s).",
    )
    p.add_argument(
        "--interval",
        default="corrected",
        choices=("corrected", "t"),
        help="Interval method (default: %(default)s).",
    )
    p.add_argument(
        "--embedding-columns",
        default="chosen_embedding,rejected_embedding",
        metavar="CHOSEN,REJECTED",
        help="Embedding columns of pairs that hold them (default: %(default)s).",
    )
    p.add_argument("--split", default="train", help="Split of a folder or Hub id (default: %(default)s).")
    p.add_argument("--config", default=None, help="Config of a folder or Hub dataset.")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="Use the first N rows only.")
    p.add_argument(
        "--batch-size", type=int, default=64, help="Texts per embedding batch (default: %(default)s)."
    )
    add_common_options(p)
    p.set_defaults(func=run)


def load_pairs(args: argparse.Namespace, columns: tuple[str, ...]) -> Any:
    """DATA as pairs with embeddings: read as they are when they hold them, else converted and embedded."""
    from ..convert import to_pairs
    from ..hub.sources import load_source
    from ..real.embed import EmbedResponses

    data = load_source(
        args.data if len(args.data) > 1 else args.data[0], split=args.split, config=args.config
    )
    if args.limit is not None:
        data = data.select(range(min(args.limit, len(data))))
    if all(c in data.column_names for c in columns):
        return data
    pairs, report = to_pairs(data)
    if report.skipped:
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items()))
        print(f"converted {report.rows_in} rows to {report.rows_out} pairs (skipped: {skipped})")
    embed = EmbedResponses(args.embedder, backend=args.embed_backend, batch_size=args.batch_size)
    return pairs.map(embed, batched=True, batch_size=max(args.batch_size, 256), desc="Embedding responses")


def run(args: argparse.Namespace) -> int:
    """Load (convert, embed), measure, write the three files, print the table."""
    from ..real.budget_curve import budget_curve
    from ..real.budget_curve_report import require_matplotlib

    budgets = _fractions(args.budgets)
    strategies = _names(args.strategies, "--strategies")
    columns = _names(args.embedding_columns, "--embedding-columns", 2)
    if args.splits < 2:
        raise CLIError(f"--splits: expected at least 2 splits (an interval needs two), got {args.splits}")
    require_matplotlib()  # before the long part: the plot is one of the three files
    pairs = load_pairs(args, columns)
    curve = budget_curve(
        pairs,
        strategies=strategies,
        budgets=budgets,
        splits=args.splits,
        seed=args.seed,
        embedding_columns=columns,
        C=args.learner_c,
        margin_seed=args.margin_seed,
        interval_method=args.interval,
        show_progress=True,
    )
    paths = curve.save(args.output_dir)
    rows = [
        {"budget": f"{b:.0%}", **{s: _cell(curve, s, b) for s in curve.strategies}} for b in curve.budgets
    ]
    print(f"held-out accuracy %, mean [interval] over {curve.splits} splits of {curve.pairs} pairs")
    print(format_table(rows))
    saved = ", ".join(
        f"{s} {m:.0%} [{lo:.0%}, {hi:.0%}]" for s in curve.strategies for m, lo, hi in [curve.saved(s, 0.01)]
    )
    print(f"annotation saved within 1 point of all pairs: {saved}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _cell(curve: Any, strategy: str, budget: float) -> str:
    low, high = curve.interval(strategy, budget)
    return f"{100 * curve.accuracy(strategy, budget):.1f} [{100 * low:.1f}, {100 * high:.1f}]"
