"""Curate Anthropic HH-RLHF with REAL: keep the most dissimilar fraction of its pairs for annotation.

The pairs are converted from HH transcripts (the shared dialogue up to the last assistant turn becomes
a conversational prompt), embedded with all-MiniLM-L6-v2, and the ``budget`` fraction with the lowest
chosen/rejected similarity over the whole split is kept, as in the REAL paper (50% on HH).

Usage:

    python dataset_scripts/hh_rlhf.py --output_dir hh-real
    python dataset_scripts/hh_rlhf.py --data_files ../shared/data/hh-rlhf-harmless-base/test.jsonl.gz \
        --budget 0.5 --output_dir hh-real
    python dataset_scripts/hh_rlhf.py --push_to_hub --repo_id me/hh-rlhf-real
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import HfArgumentParser


@dataclass
class ScriptArguments:
    """Arguments of the HH-RLHF curation script."""

    dataset_name: str = field(default="Anthropic/hh-rlhf", metadata={"help": "Hub id of the source."})
    data_dir: str | None = field(default="harmless-base", metadata={"help": "Subset folder of the source."})
    data_files: str | None = field(
        default=None, metadata={"help": "Local .jsonl(.gz) file instead of the Hub."}
    )
    split: str = field(default="train", metadata={"help": "Split to curate."})
    strategy: str = field(default="dissimilar", metadata={"help": "dissimilar, similar or random."})
    budget: float = field(default=0.5, metadata={"help": "Fraction of pairs to keep."})
    seed: int = field(default=0, metadata={"help": "Seed of the random strategy."})
    limit: int | None = field(default=None, metadata={"help": "Use the first N rows only."})
    embedder: str = field(
        default="sentence-transformers/all-MiniLM-L6-v2",
        metadata={"help": "Embedding model (sentence-transformers, or a causal LM with --embed_backend)."},
    )
    embed_backend: str = field(
        default="auto", metadata={"help": "auto, sentence-transformers or causal-lm (REAL's LLM embeddings)."}
    )
    output_dir: str | None = field(default=None, metadata={"help": "Write a Hub-layout folder here."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the curated set to the Hub."})
    repo_id: str = field(default="real-hub/hh-rlhf-real", metadata={"help": "Hub repo to push to."})
    private: bool = field(default=False, metadata={"help": "Create the Hub repo private."})


def main(args: ScriptArguments) -> None:
    """Load, curate and write (or push) HH-RLHF."""
    from datasets import load_dataset

    from real_hub import curate

    if args.data_files:
        source = load_dataset("json", data_files=args.data_files, split="train")
    else:
        source = load_dataset(args.dataset_name, data_dir=args.data_dir, split=args.split)
    result = curate(
        source,
        source_format="hh",
        strategy=args.strategy,
        budget=args.budget,
        seed=args.seed,
        embedder=args.embedder,
        embed_backend=args.embed_backend,
        limit=args.limit,
        output_dir=args.output_dir,
        push_to=args.repo_id if args.push_to_hub else None,
        private=args.private,
        overwrite=True,
        source_name=args.data_files or f"{args.dataset_name} ({args.data_dir or 'all'}, {args.split})",
    )
    report = result.report
    print(f"{report.conversion.rows_in} rows -> {report.conversion.rows_out} pairs -> {report.rows_out} kept")
    print(f"skipped: {report.skipped or 'none'}; annotation saved: {result.statistics.annotation_saved}")


if __name__ == "__main__":
    parser = HfArgumentParser(ScriptArguments)
    main(parser.parse_args_into_dataclasses()[0])
