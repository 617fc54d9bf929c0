"""``real-hub repair``: rebuild a curated folder's broken or lost ``README.md`` from the shards on disk."""

from __future__ import annotations

import argparse
from typing import Any

from ._utils import add_common_options

EXAMPLES = """examples:
  real-hub repair hh-real     # README.md cut short or unparseable: rebuild it (old one: README.md.broken)
then:
  real-hub curate ... --output-dir hh-real    # writes into the folder again
"""


def register(sub: Any) -> None:
    """Add the ``repair`` command."""
    p = sub.add_parser(
        "repair",
        help="Rebuild a curated folder's broken dataset card from its shards.",
        description="Rebuild the README.md dataset card of a folder written by `real-hub curate` or "
        "save_curated when it is cut short, unparseable or lost: every config sub-folder with sound shards "
        "is listed again (per split, the shard the old card still names, else the newest), with the "
        "provenance and statistics that can still be read from the old card. A readable card is left alone.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "folder", metavar="FOLDER", help="The curated folder (with README.md and <config>/ shards)."
    )
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Repair the card and say what the folder now holds."""
    from ..hub.repair import repair_card

    report = repair_card(args.folder)
    if not report.repaired:
        print(f"{args.folder}/README.md is readable and lists {sorted(report.configs)}: nothing to repair")
        return 0
    print(f"{args.folder}/README.md was broken: {report.problem}")
    if report.backup:
        print(f"kept the broken card as {report.backup}")
    for config, splits in report.configs.items():
        recovered = "provenance recovered" if config in report.recovered else "provenance lost"
        print(f"config {config}: " + ", ".join(f"{s} {p}" for s, p in splits.items()) + f" ({recovered})")
    for path, problem in report.left_out.items():
        print(f"left out {path}: {problem}")
    return 0
