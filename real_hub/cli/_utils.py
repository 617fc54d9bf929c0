"""What every command shares: the error boundary, logging set-up, and table printing."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import RealHubError, command_line_flags

logger = logging.getLogger("real_hub.cli")


class CLIError(RealHubError):
    """A user-facing command-line error: printed as one line, exit status 2."""


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every command takes."""
    parser.add_argument("-v", "--verbose", action="store_true", help="Log at DEBUG level.")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="Only warnings and errors; no progress bars."
    )
    parser.add_argument("--debug", action="store_true", help="Show the full traceback on errors.")


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per field of the dataclass ``cls``, from its type, default and metadata.

    Metadata keys: ``help``, ``flag`` (default ``--name-with-dashes``), ``choices``, ``metavar``, ``group``
    (argument group title), ``off_help``, ``nargs`` and ``const`` (``nargs="?"``: a flag whose value is
    optional, ``const`` when it has none). A boolean field defaulting to False is ``--flag``; one
    defaulting to True is ``--no-flag`` (help: ``off_help``). ``X | None`` fields take an ``X``;
    ``list[X]`` fields are repeatable flags, one ``X`` each.
    Defaults are written once, in the dataclass.
    """
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        group = meta.get("group")
        target = groups.setdefault(group, parser.add_argument_group(group)) if group else parser
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kind = hints[f.name]
        args = [t for t in typing.get_args(kind) if t is not type(None)] or [kind]
        default = f.default
        helptext = meta.get("help", "")
        if args[0] is bool:
            if default:
                target.add_argument(
                    "--no-" + flag.removeprefix("--"),
                    dest=f.name,
                    action="store_false",
                    help=f"Do not: {helptext}",
                )
            else:
                target.add_argument(flag, dest=f.name, action="store_true", help=helptext)
            continue
        if default is not None:
            helptext += " (default: %(default)s)"
        extra = {k: meta[k] for k in ("nargs", "const") if k in meta}
        if typing.get_origin(args[0]) is list:  # repeatable: --flag A --flag B
            args = list(typing.get_args(args[0])) or [str]
            extra["action"] = "append"
        target.add_argument(
            flag,
            dest=f.name,
            type=args[0],
            default=default,
            choices=meta.get("choices"),
            metavar=meta.get("metavar"),
            help=helptext,
            **extra,
        )


def dataclass_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` read back from parsed ``args``."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}


def setup_logging(args: argparse.Namespace) -> None:
    """INFO logging to stderr by default; ``--quiet`` also turns progress bars off."""
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in (
        "httpx",
        "httpx2",
        "urllib3",
        "filelock",
        "fsspec",
        "sentence_transformers",
        "transformers",
    ):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if args.quiet:
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["REAL_HUB_DISABLE_PROGRESS_BARS"] = "1"
        import datasets

        datasets.disable_progress_bars()


def flag_names() -> dict[str, str]:
    """The options whose flag is not ``--name-with-dashes``, by their Python name (for error messages)."""
    from ..options import CurateOptions

    names = {"source": "--format", "labels_dir": "--annotations-dir"}
    names.update(
        {f.name: f.metadata["flag"] for f in dataclasses.fields(CurateOptions) if "flag" in f.metadata}
    )
    return names


def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command: a known error is one line on stderr and exit status 2, never a traceback.

    Within the command, errors that advise an option name its flag (``--overwrite``), not its Python
    keyword (:func:`real_hub.errors.option`).
    """
    setup_logging(args)
    try:
        with command_line_flags(flag_names()):
            return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RealHubError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # the last line of defence: no traceback reaches a user
        if args.debug:
            raise
        print(
            f"error: {type(err).__name__}: {err} (run again with --debug for the traceback)", file=sys.stderr
        )
        return 1


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table of ``rows`` (dicts), columns aligned."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    sep = "  ".join("-" * w for w in widths)
    body = [
        "  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(row, widths)) for row in cells
    ]
    return "\n".join([line, sep, *body])


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        small = value != 0 and abs(value) < 1e-3  # a learning rate: 5e-07, not 0.000
        return f"{value:.3g}" if small else f"{value:.3f}"
    return str(value)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
