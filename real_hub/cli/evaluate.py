"""``real-hub eval``: reward accuracy on pairs, or best-of-N on candidates with gold scores."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..atomic import describe, write_json_atomic
from ._utils import CLIError, add_common_options, format_table

EXAMPLES = """examples:
  real-hub eval rewarded.jsonl                         # pairs with chosen_reward/rejected_reward
  real-hub eval rewarded.parquet --by subset --json accuracy.json
  real-hub eval curated/ --config dissimilar --split train
  real-hub eval candidates.jsonl.gz --rewards-column rewards --gold-column scores
  real-hub eval me/rewarded-pairs --split test          # a Hub dataset
  real-hub eval rb2-rewarded.parquet --by subset         # RewardBench 2: rejected_reward is a list

Pairs (a chosen and a rejected reward column) are scored by accuracy: chosen reward strictly higher
(a tie counts as wrong). RewardBench 2 rows (a list of rejected rewards) earn 1 when the chosen reward
beats all rejected ones, 1/k when k rewards tie at the top; grouped by subset, the Ties subset gets
RewardBench 2's weighted score and the last line is the mean over subsets (RewardBench 2's score).
Candidates (a rewards column) are scored by best-of-N against the gold column.
"""


def register(sub: Any) -> None:
    """Add the ``eval`` command."""
    p = sub.add_parser(
        "eval",
        help="Reward accuracy on pairs, or best-of-N on candidates with gold scores.",
        description="Evaluate rewards on a dataset: local json/jsonl(.gz)/parquet/csv file(s), a folder "
        "written by real_hub.save_curated, or a Hub dataset id. Pairs give RewardBench-style accuracy "
        "(overall and per group with --by); candidates with gold scores give best-of-N.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "data", nargs="+", metavar="DATA", help="Data file(s), a curated folder, or a Hub dataset id."
    )
    p.add_argument(
        "--chosen-column", default="chosen_reward", help="Reward of the chosen side (default: %(default)s)."
    )
    p.add_argument(
        "--rejected-column",
        default="rejected_reward",
        help="Reward of the rejected side (default: %(default)s).",
    )
    p.add_argument(
        "--by", default=None, metavar="COLUMN", help="Also report accuracy per value of this column."
    )
    p.add_argument(
        "--rewards-column",
        default="rewards",
        help="Candidates: one reward per response (default: %(default)s).",
    )
    p.add_argument(
        "--gold-column",
        default="scores",
        help="Candidates: one gold score per response (default: %(default)s).",
    )
    p.add_argument("--split", default="train", help="Split to evaluate (default: %(default)s).")
    p.add_argument("--config", default=None, help="Config of a curated folder or Hub dataset.")
    p.add_argument("--json", default=None, metavar="OUT.json", help="Also write the report as JSON here.")
    add_common_options(p)
    p.set_defaults(func=run)


def load_data(data: list[str], split: str = "train", config: str | None = None) -> Any:
    """Load DATA as a ``datasets.Dataset`` (see :func:`real_hub.hub.sources.load_source`)."""
    from ..hub.sources import load_source

    return load_source(data if len(data) > 1 else data[0], split=split, config=config)


def evaluate(dataset: Any, args: argparse.Namespace) -> tuple[Any, str]:
    """The report (accuracy or best-of-N, by the columns present) and its table."""
    from ..drsow.evaluate import best_of_n, reward_accuracy
    from ..errors import ColumnError

    names = dataset.column_names
    if args.chosen_column in names or args.rejected_column in names:
        report = reward_accuracy(
            dataset, chosen_column=args.chosen_column, rejected_column=args.rejected_column, by=args.by
        )
        columns = [args.by or "group", "count", "correct", "ties", "accuracy"]
        if any(g.scoring != "accuracy" for g in report.groups):
            columns.append("scoring")
        rows = [{**r, args.by or "group": r["group"]} for r in report.rows()]
        header = (
            "best-of-N accuracy (RewardBench 2: 1/k credit for k tied at the top)\n"
            if report.format == "best-of-n"
            else ""
        )
        return report, header + format_table(rows, columns)
    if args.rewards_column in names:
        report = best_of_n(dataset, rewards_column=args.rewards_column, gold_column=args.gold_column)
        header = f"best-of-N over {report.prompts} prompts, {report.responses} responses"
        return report, header + "\n" + format_table(report.rows())
    raise ColumnError.missing(
        [args.chosen_column, args.rejected_column],
        names,
        hint=f"expected pairs with a reward per side, or candidates with a {args.rewards_column!r} column"
        " (set the names with --chosen-column/--rejected-column or --rewards-column)",
    )


def run(args: argparse.Namespace) -> int:
    """Load, evaluate, print the table, write the JSON."""
    dataset = load_data(args.data, args.split, args.config)
    report, table = evaluate(dataset, args)
    print(table)
    if args.json:
        out = Path(args.json)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out, report.to_dict(), indent=2, sort_keys=True)
        except OSError as err:
            raise CLIError(f"cannot write --json {out}: {describe(err)}") from err
        print(f"\nwrote {out}")
    return 0
