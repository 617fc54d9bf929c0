r"""Build on-policy preference pairs from UltraFeedback's prompts alone: generate, embed, select with REAL.

Only the ``instruction`` of each UltraFeedback row is kept (its completions are ignored). The ``model``
samples ``n`` responses per prompt, the responses are embedded with all-MiniLM-L6-v2 and the pair picked by
``strategy`` (``dissimilar`` by default: REAL's "easy" pair) is kept. With ``--strong``/``--weak`` the pairs
are oriented by the Dr.SoW reward of the two models; without them they are left unoriented, for annotation
in the real-hub Space. The card records the generator and its sampling parameters.

Usage:

    python dataset_scripts/ultrafeedback_prompts.py --limit 200 --output_dir uf-prompts-real
    python dataset_scripts/ultrafeedback_prompts.py --model HuggingFaceTB/SmolLM2-135M-Instruct --n 4 \
        --strong me/model-dpo --weak me/model-sft --push_to_hub --repo_id me/uf-prompts-real
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import HfArgumentParser


@dataclass
class ScriptArguments:
    """Arguments of the prompt-only UltraFeedback script."""

    dataset_name: str = field(default="openbmb/UltraFeedback", metadata={"help": "Hub id of the source."})
    data_files: str | None = field(default=None, metadata={"help": "Local .jsonl/.parquet file instead."})
    split: str = field(default="train", metadata={"help": "Split to read the prompts from."})
    prompt_column: str = field(default="instruction", metadata={"help": "Column holding the prompts."})
    model: str = field(
        default="HuggingFaceTB/SmolLM2-135M-Instruct", metadata={"help": "Causal LM that generates."}
    )
    n: int = field(default=4, metadata={"help": "Responses generated per prompt."})
    max_new_tokens: int = field(default=256, metadata={"help": "Most new tokens per response."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling probability mass."})
    generate_backend: str = field(default="transformers", metadata={"help": "transformers or vllm."})
    embedder: str = field(
        default="sentence-transformers/all-MiniLM-L6-v2", metadata={"help": "Embedding model of REAL."}
    )
    embed_backend: str = field(default="auto", metadata={"help": "auto, sentence-transformers, causal-lm."})
    strong: str | None = field(default=None, metadata={"help": "Dr.SoW's better-aligned model."})
    weak: str | None = field(default=None, metadata={"help": "Dr.SoW's less-aligned model."})
    strategy: str = field(default="dissimilar", metadata={"help": "dissimilar, similar, random or centroid."})
    seed: int = field(default=0, metadata={"help": "Seed of generation, the split and the random strategy."})
    limit: int | None = field(default=None, metadata={"help": "Use the first N prompts only."})
    test_size: float = field(default=0.05, metadata={"help": "Share of pairs held out as the test split."})
    output_dir: str | None = field(default=None, metadata={"help": "Write a Hub-layout folder here."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the curated set to the Hub."})
    repo_id: str = field(default="real-hub/ultrafeedback-prompts-real", metadata={"help": "Hub repo."})


def to_prompt(example: dict[str, Any], prompt_column: str) -> dict[str, str]:
    """One source row as a prompt-only row."""
    return {"prompt": example[prompt_column]}


def main(args: ScriptArguments) -> None:
    """Load the prompts, curate them (generate, embed, select, label), split and write (or push)."""
    from datasets import load_dataset

    from real_hub import curate, push_curated, save_curated

    if args.data_files:
        fmt = "parquet" if args.data_files.endswith(".parquet") else "json"
        source = load_dataset(fmt, data_files=args.data_files, split="train")
    else:
        source = load_dataset(args.dataset_name, split=args.split)
    if args.limit is not None:
        source = source.select(range(min(args.limit, len(source))))
    prompts = source.map(
        to_prompt, fn_kwargs={"prompt_column": args.prompt_column}, remove_columns=source.column_names
    )
    result = curate(
        prompts,
        generate=args.model,
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        generate_backend=args.generate_backend,
        embedder=args.embedder,
        embed_backend=args.embed_backend,
        strong=args.strong,
        weak=args.weak,
        strategy=args.strategy,
        seed=args.seed,
    )
    splits = result.dataset.train_test_split(test_size=args.test_size, seed=args.seed)
    result.statistics.rows_out = {name: len(split) for name, split in splits.items()}
    common = {"provenance": result.provenance, "statistics": result.statistics, "overwrite": True}
    if args.output_dir:
        save_curated(splits, args.output_dir, args.strategy, **common)
    if args.push_to_hub:
        push_curated(splits, args.repo_id, args.strategy, **common)
    gen = result.report.generation
    print(
        f"{len(prompts)} prompts -> {gen.samples if gen else 0} responses -> {result.report.rows_out} pairs "
        f"(skipped: {result.report.skipped or 'none'})"
    )


if __name__ == "__main__":
    parser = HfArgumentParser(ScriptArguments)
    main(parser.parse_args_into_dataclasses()[0])
