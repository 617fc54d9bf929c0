"""Curate UltraFeedback with REAL: one pair per prompt among its four completions.

Each prompt's completions are embedded with all-MiniLM-L6-v2 and the pair picked by ``strategy``
(``dissimilar`` by default: REAL's "easy" pair) is oriented by the mean fine-grained rating.

Usage:

    python dataset_scripts/ultrafeedback.py --output_dir ultrafeedback-real
    python dataset_scripts/ultrafeedback.py --strategy centroid --push_to_hub --repo_id me/ultrafeedback-real
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import HfArgumentParser


@dataclass
class ScriptArguments:
    """Arguments of the UltraFeedback curation script."""

    dataset_name: str = field(default="openbmb/UltraFeedback", metadata={"help": "Hub id of the source."})
    data_files: str | None = field(default=None, metadata={"help": "Local .jsonl/.parquet file instead."})
    split: str = field(default="train", metadata={"help": "Split to curate."})
    strategy: str = field(default="dissimilar", metadata={"help": "dissimilar, similar, random or centroid."})
    pairs_per_prompt: int = field(default=1, metadata={"help": "Pairs per prompt."})
    budget: float | None = field(
        default=None, metadata={"help": "Keep this fraction of the selected pairs, most dissimilar first."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the random strategy."})
    limit: int | None = field(default=None, metadata={"help": "Use the first N prompts only."})
    test_size: float = field(default=0.05, metadata={"help": "Share of pairs held out as the test split."})
    embedder: str = field(
        default="sentence-transformers/all-MiniLM-L6-v2",
        metadata={"help": "Embedding model (sentence-transformers, or a causal LM with --embed_backend)."},
    )
    embed_backend: str = field(
        default="auto", metadata={"help": "auto, sentence-transformers or causal-lm (REAL's LLM embeddings)."}
    )
    output_dir: str | None = field(default=None, metadata={"help": "Write a Hub-layout folder here."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the curated set to the Hub."})
    repo_id: str = field(default="real-hub/ultrafeedback-real", metadata={"help": "Hub repo to push to."})


def main(args: ScriptArguments) -> None:
    """Load, curate, split and write (or push) UltraFeedback."""
    from datasets import load_dataset

    from real_hub import curate, push_curated, save_curated

    if args.data_files:
        fmt = "parquet" if args.data_files.endswith(".parquet") else "json"
        source = load_dataset(fmt, data_files=args.data_files, split="train")
    else:
        source = load_dataset(args.dataset_name, split=args.split)
    result = curate(
        source,
        source_format="ultrafeedback",
        strategy=args.strategy,
        pairs_per_prompt=args.pairs_per_prompt,
        budget=args.budget,
        seed=args.seed,
        embedder=args.embedder,
        embed_backend=args.embed_backend,
        limit=args.limit,
        source_name=args.data_files or f"{args.dataset_name} ({args.split})",
    )
    splits = result.dataset.train_test_split(test_size=args.test_size, seed=args.seed)
    result.statistics.rows_out = {name: len(split) for name, split in splits.items()}
    if args.output_dir:
        save_curated(
            splits,
            args.output_dir,
            args.strategy,
            provenance=result.provenance,
            statistics=result.statistics,
            overwrite=True,
        )
    if args.push_to_hub:
        push_curated(
            splits,
            args.repo_id,
            args.strategy,
            provenance=result.provenance,
            statistics=result.statistics,
            overwrite=True,
        )
    print(
        f"{result.report.conversion.rows_out} prompts -> {result.report.rows_out} pairs "
        f"(skipped: {result.report.skipped or 'none'})"
    )


if __name__ == "__main__":
    parser = HfArgumentParser(ScriptArguments)
    main(parser.parse_args_into_dataclasses()[0])
