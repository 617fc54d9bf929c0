"""``real-hub train``: DPO (TRL) on a curated preference set, saved with a model card, optionally pushed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._utils import add_common_options, format_table

if TYPE_CHECKING:
    from ..train.dpo import TrainResult

EXAMPLES = """examples:
  real-hub train hh-real --config dissimilar --model HuggingFaceTB/SmolLM2-135M-Instruct --max-steps 200
  real-hub train me/hh-real --config dissimilar --model path/to/model --lora --push-to me/model-dpo
"""


def register(sub: Any) -> None:
    """Add the ``train`` command."""
    from ..train.dpo import PRECOMPUTE_REF

    p = sub.add_parser(
        "train",
        help="Train a model with DPO on a curated set.",
        description="Train a causal LM with DPO (TRL) on a curated preference set; reference log-probs "
        "from real-hub's engine; save it with a model card and optionally push it to the Hub.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", metavar="DATASET", help="Curated folder, data file or Hub dataset id.")
    p.add_argument("--model", required=True, help="Model folder, Hub id, or packaged model name.")
    p.add_argument("--config", default=None, help="Config of the dataset (e.g. dissimilar).")
    p.add_argument("--split", default="train", help="Split to train on (default: %(default)s).")
    p.add_argument("--eval-split", default=None, help="Split to evaluate on after training.")
    p.add_argument("--output-dir", default=None, help="Output folder (default: <model name>-DPO).")
    p.add_argument("--push-to", default=None, metavar="REPO_ID", help="Push the model to this Hub repo.")
    p.add_argument("--private", action="store_true", help="Create the Hub repo private.")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login).")
    p.add_argument("--lora", action="store_true", help="Train LoRA adapters (peft) instead of all weights.")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default: %(default)s).")
    p.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (default: %(default)s).")
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta (default: %(default)s).")
    p.add_argument("--lr", type=float, default=5e-7, help="Learning rate (default: %(default)s).")
    p.add_argument("--max-steps", type=int, default=-1, help="Stop after N steps (default: one epoch).")
    p.add_argument("--epochs", type=float, default=1.0, help="Epochs when --max-steps is not given.")
    p.add_argument(
        "--batch-size", type=int, default=4, help="Pairs per device and step (default: %(default)s)."
    )
    p.add_argument("--grad-accum", type=int, default=1, help="Gradient accumulation steps.")
    p.add_argument("--max-length", type=int, default=1024, help="Tokens per sequence (default: %(default)s).")
    p.add_argument("--precompute-ref", default="auto", choices=PRECOMPUTE_REF, help="Reference log-probs.")
    p.add_argument("--dtype", default="float32", help="Weights' dtype: float32, bfloat16 or float16.")
    p.add_argument("--seed", type=int, default=0, help="Seed (default: %(default)s).")
    p.add_argument(
        "--base-model", default=None, help="Base model's Hub id for the card (if --model is a path)."
    )
    p.add_argument(
        "--dataset-name", default=None, help="Dataset's Hub id for the card (if DATASET is a path)."
    )
    add_common_options(p)
    p.set_defaults(func=run)


def main(args: argparse.Namespace) -> TrainResult:
    """Run :func:`real_hub.train_dpo` with the parsed options."""
    from ..train.dpo import train_dpo

    output_dir = args.output_dir or f"{Path(args.model.rstrip('/')).name}-DPO"
    return train_dpo(
        args.dataset,
        args.model,
        output_dir=output_dir,
        config=args.config,
        split=args.split,
        eval_split=args.eval_split,
        beta=args.beta,
        learning_rate=args.lr,
        max_steps=args.max_steps,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        max_length=args.max_length,
        lora=args.lora,
        **({"lora_r": args.lora_r, "lora_alpha": args.lora_alpha} if args.lora else {}),
        precompute_ref=args.precompute_ref,
        push_to=args.push_to,
        private=args.private,
        token=args.token,
        base_model=args.base_model,
        dataset_name=args.dataset_name,
        dtype=args.dtype,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    """Train and print the losses, the final metrics and where the model went."""
    result = main(args)
    rows = [{"metric": k, "value": v} for k, v in sorted(result.metrics.items())]
    print(format_table(rows))
    print(
        f"loss {result.first_loss:.4f} -> {result.final_loss:.4f} over {len(result.losses)} logged steps; "
        f"{result.rows_trained} pairs trained on ({result.rows_dropped} dropped: prompt fills --max-length); "
        f"reference log-probs: {result.ref_logps_source}"
    )
    print(f"wrote {result.output_dir} (model card {result.card_path})")
    if result.pushed_to:
        print(f"pushed to {result.pushed_to} (AutoModelForCausalLM.from_pretrained({result.pushed_to!r}))")
    return 0
