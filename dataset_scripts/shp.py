"""Curate SHP / SHP-2 with REAL: group comments by post, pick the least similar pair of each post.

SHP stores one row per compared comment pair; the rows of a post are grouped into one candidates row
(scores are the comments' votes), then REAL selects and the votes orient each pair.

Usage:

    python dataset_scripts/shp.py --dataset_name stanfordnlp/SHP-2 --split validation --output_dir shp-real
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import HfArgumentParser


@dataclass
class ScriptArguments:
    """Arguments of the SHP curation script."""

    dataset_name: str = field(
        default="stanfordnlp/SHP", metadata={"help": "stanfordnlp/SHP or stanfordnlp/SHP-2."}
    )
    data_files: str | None = field(default=None, metadata={"help": "Local .jsonl/.parquet file instead."})
    split: str = field(default="train", metadata={"help": "Split to curate."})
    strategy: str = field(default="dissimilar", metadata={"help": "dissimilar, similar, random or centroid."})
    pairs_per_prompt: int = field(default=1, metadata={"help": "Pairs per post."})
    budget: float | None = field(
        default=None, metadata={"help": "Keep this fraction of the selected pairs, most dissimilar first."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the random strategy."})
    embedder: str = field(
        default="sentence-transformers/all-MiniLM-L6-v2",
        metadata={"help": "Embedding model (sentence-transformers, or a causal LM with --embed_backend)."},
    )
    embed_backend: str = field(
        default="auto", metadata={"help": "auto, sentence-transformers or causal-lm (REAL's LLM embeddings)."}
    )
    output_dir: str | None = field(default=None, metadata={"help": "Write a Hub-layout folder here."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the curated set to the Hub."})
    repo_id: str = field(default="real-hub/shp-real", metadata={"help": "Hub repo to push to."})


def main(args: ScriptArguments) -> None:
    """Load, curate and write (or push) SHP."""
    from datasets import load_dataset

    from real_hub import curate

    if args.data_files:
        fmt = "parquet" if args.data_files.endswith(".parquet") else "json"
        source = load_dataset(fmt, data_files=args.data_files, split="train")
    else:
        source = load_dataset(args.dataset_name, split=args.split)
    result = curate(
        source,
        source_format="shp",
        strategy=args.strategy,
        pairs_per_prompt=args.pairs_per_prompt,
        budget=args.budget,
        seed=args.seed,
        embedder=args.embedder,
        embed_backend=args.embed_backend,
        output_dir=args.output_dir,
        push_to=args.repo_id if args.push_to_hub else None,
        overwrite=True,
        source_name=args.data_files or f"{args.dataset_name} ({args.split})",
    )
    print(
        f"{result.report.conversion.rows_out} posts -> {result.report.rows_out} pairs "
        f"(skipped: {result.report.skipped or 'none'})"
    )


if __name__ == "__main__":
    parser = HfArgumentParser(ScriptArguments)
    main(parser.parse_args_into_dataclasses()[0])
