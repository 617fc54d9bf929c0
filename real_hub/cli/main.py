"""``real-hub``: the command line entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..version import __version__
from . import budget_curve, curate, demo, evaluate, repair, space, train

COMMANDS = [demo, curate, evaluate, budget_curve, train, space, repair]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-command per module in ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="real-hub",
        description="Cheaper, cleaner preference data for LLM alignment "
        "(REAL pair selection, Dr.SoW rewards).",
        epilog="Run `real-hub COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"real-hub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # its flags are DPOConfig's: that parser loads TRL, so only when asked for
        return train.run_argv(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ._utils import run_command

    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
