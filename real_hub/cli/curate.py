"""``real-hub curate``: the whole pipeline on a source, written to a folder and/or pushed to the Hub."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..atomic import check_writable, describe, write_json_atomic
from ._utils import CLIError, add_common_options, add_dataclass_options, dataclass_values, format_table

EXAMPLES = """examples:
  # REAL on HH-RLHF: keep the 35% most dissimilar pairs for annotation
  real-hub curate ../shared/data/hh-rlhf-harmless-base/test.jsonl.gz --budget 0.35 --output-dir hh-real

  # candidates (SHP, UltraFeedback, prompt + responses): one dissimilar pair per prompt, pushed to the Hub
  real-hub curate stanfordnlp/SHP-2 --split validation --strategy dissimilar --push-to me/shp-real

  # prompts only: sample 4 responses per prompt, pick the most dissimilar pair of each for annotation
  real-hub curate prompts.jsonl --generate HuggingFaceTB/SmolLM2-135M-Instruct --n 4 --output-dir gen

  # drop prompts leaked from a benchmark's split, then near-duplicate prompts (cosine >= 0.9), then select
  real-hub curate train.jsonl --decontaminate test.jsonl:prompt --dedup --budget 0.5 --output-dir clean

  # Dr.SoW: rewards from a strong over a weak model, pairs oriented by reward
  real-hub curate pairs.jsonl --strong me/model-dpo --weak me/model-sft --label --output-dir out

then:
  python -c "from datasets import load_dataset; print(load_dataset('hh-real', 'dissimilar'))"
"""


def register(sub: Any) -> None:
    """Add the ``curate`` command."""
    p = sub.add_parser(
        "curate",
        help="Convert, embed, (reward), select and save or push a curated preference set.",
        description="Curate a preference source: convert it to pairs or candidates, embed the responses, "
        "optionally add Dr.SoW rewards, select pairs (REAL) and write them as one config of a Hub-style "
        "dataset (parquet + dataset card) to a folder and/or a Hub repo.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source",
        nargs="+",
        metavar="SOURCE",
        help="Data files (.json/.jsonl/.parquet/.csv, optionally .gz), a folder, or a Hub dataset id.",
    )
    from ..options import CurateOptions

    add_dataclass_options(p, CurateOptions)
    g = p.add_argument_group("output")
    g.add_argument("--output-dir", default=None, help="Write a Hub-layout folder here.")
    g.add_argument("--push-to", default=None, metavar="REPO_ID", help="Push to this Hub dataset repo.")
    g.add_argument("--config-name", default=None, help="Config to write (default: the strategy).")
    g.add_argument("--private", action="store_true", help="Create the Hub repo private.")
    g.add_argument("--overwrite", action="store_true", help="Replace an existing config.")
    g.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login).")
    g.add_argument("--report", default=None, metavar="OUT.json", help="Also write the full report as JSON.")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the pipeline and print its summary."""
    from ..dedup.curate import summary_rows
    from ..options import CurateOptions
    from ..pipeline import curate

    if args.output_dir is None and args.push_to is None:
        raise CLIError("nowhere to write: give --output-dir DIR and/or --push-to REPO_ID")
    if args.report:  # before the pipeline runs, as curate checks --output-dir
        check_writable(Path(args.report).parent, "folder of --report")
    result = curate(
        args.source if len(args.source) > 1 else args.source[0],
        output_dir=args.output_dir,
        push_to=args.push_to,
        config_name=args.config_name,
        private=args.private,
        overwrite=args.overwrite,
        token=args.token,
        **dataclass_values(args, CurateOptions),
    )
    report = result.report
    rows = []
    if report.generation is not None:
        gen = report.generation
        rows.append({"step": f"generate (n={args.n})", "in": gen.rows, "out": gen.samples, "skipped": 0})
    rows += [
        {
            "step": "convert",
            "in": report.conversion.rows_in,
            "out": report.conversion.rows_out,
            "skipped": report.conversion.n_skipped,
        },
    ]
    rows += summary_rows(report.dedup, report.decontamination)
    if report.selection is not None:
        rows.append(
            {
                "step": f"select ({report.selection.strategy})",
                "in": report.selection.prompts_in,
                "out": report.selection.pairs_out,
                "skipped": sum(report.selection.skipped.values()),
            }
        )
    if report.budget is not None:
        rows.append(
            {
                "step": f"budget {report.budget.budget:g} ({report.budget.strategy})",
                "in": report.budget.pairs_in,
                "out": report.budget.pairs_kept,
                "skipped": 0,
            }
        )
    if report.labelling is not None:
        rows.append(
            {
                "step": "label",
                "in": report.labelling.rows_in,
                "out": report.labelling.pairs_out,
                "skipped": sum(report.labelling.skipped.values()),
            }
        )
    print(format_table(rows))
    if report.generation is not None:
        gen = report.generation
        print(
            f"generated {gen.new_tokens} tokens: {gen.stopped} samples stopped, {gen.truncated} hit "
            f"--max-new-tokens, {gen.empty_samples} empty; rows with identical samples: "
            f"{gen.rows_all_identical}, with empty samples only: {gen.rows_all_empty}"
        )
    for check in (report.decontamination, report.dedup):
        if check is not None:
            print(check.summary())
    if report.skipped:
        print("skipped by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items())))
    if report.budget is not None:
        print(f"annotation saved: {report.budget.annotation_saved:.1%}")
    elif report.shape == "pairs":
        print("no selection: every pair is kept (--budget F keeps the most dissimilar share F)")
    print(f"{report.rows_out} pairs in {sum(report.seconds.values()):.1f} s")
    config = report.config
    if report.output_dir:
        print(f"wrote {report.output_dir} (load_dataset({report.output_dir!r}, {config!r}))")
    if report.pushed_to:
        print(f"pushed to {report.pushed_to} (load_dataset({report.pushed_to!r}, {config!r}))")
    if args.report:
        try:
            write_json_atomic(args.report, report.to_dict(), indent=2, default=str)
        except OSError as err:
            raise CLIError(f"cannot write --report {args.report}: {describe(err)}") from err
    return 0
