"""The curate command's flags are generated from CurateOptions: one default and one help text per option."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from real_hub.cli import curate as curate_cli
from real_hub.pipeline import CurateOptions


def curate_parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="real-hub")
    curate_cli.register(root.add_subparsers())
    return root


def test_every_option_is_a_flag_with_its_dataclass_default_and_help():
    args = curate_parser().parse_args(["curate", "data.jsonl", "--output-dir", "out"])
    for f in dataclasses.fields(CurateOptions):
        assert getattr(args, f.name) == f.default, f.name
        assert f.metadata.get("help"), f"{f.name} has no help text"


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--format", "hh"], "source_format", "hh"),
        (["--budget", "0.35"], "budget", 0.35),
        (["--pairs-per-prompt", "3"], "pairs_per_prompt", 3),
        (["--no-domain-routing"], "domain_routing", False),
        (["--label"], "label", True),
        (["--keep-embeddings"], "keep_embeddings", True),
        (["--num-proc", "2"], "num_proc", 2),
    ],
)
def test_flags_parse_into_their_field(argv, field, value):
    args = curate_parser().parse_args(["curate", "data.jsonl", *argv])
    assert getattr(args, field) == value
    options = CurateOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(CurateOptions)})
    assert getattr(options, field) == value


def test_choices_come_from_the_field_metadata():
    with pytest.raises(SystemExit):
        curate_parser().parse_args(["curate", "data.jsonl", "--normalize", "max"])
