"""``real-hub train``: DPO (TRL) on a curated preference set, saved with a model card, optionally pushed.

Its flags are TRL's own: every ``DPOConfig`` field (``--learning_rate``, ``--num_train_epochs``, ``--beta``,
``--max_length``, ...; ``--learning-rate`` works too), read by ``transformers``' ``HfArgumentParser`` with
real-hub's defaults, plus the few options of :class:`TrainOptions`. Building that parser loads TRL, so the
top-level parser only lists the command, and ``real-hub train`` parses its own arguments
(:func:`run_argv`).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._utils import CLIError, add_common_options, format_table, run_command

if TYPE_CHECKING:
    from ..train.dpo import TrainResult

HELP = "Train a model with DPO (TRL) on a curated set."
DESCRIPTION = (
    "Train a causal LM with DPO (TRL's DPOTrainer) on a curated preference set; reference log-probs from "
    "real-hub's engine; save it with a model card and optionally push it to the Hub. Every DPOConfig field "
    "is a flag, with real-hub's defaults where they differ from TRL's (bf16 and gradient checkpointing only "
    "on a GPU that has bf16)."
)
EXAMPLES = """examples:
  real-hub train hh-real --config dissimilar --model HuggingFaceTB/SmolLM2-135M-Instruct --max_steps 200
  real-hub train me/hh-real --config dissimilar --model path/to/model --lora --push-to me/model-dpo
  real-hub train hh-real --model path/to/model --learning_rate 1e-6 --beta 0.05 --num_train_epochs 2
"""


def _option(default: Any, help: str, **metadata: Any) -> Any:
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class TrainOptions:
    """``real-hub train``'s own options (the training ones are ``DPOConfig``'s)."""

    model: str = _option(None, "Model folder, Hub id, or packaged model name.", required=True)
    config: str | None = _option(None, "Config of the dataset (e.g. dissimilar).")
    split: str = _option("train", "Split to train on.")
    eval_split: str | None = _option(None, "Split to evaluate on after training.")
    lora: bool = _option(False, "Train LoRA adapters (peft) instead of all weights.")
    lora_r: int = _option(16, "LoRA rank.")
    lora_alpha: int = _option(32, "LoRA alpha.")
    precompute_ref: str = _option(
        "auto", "Reference log-probs.", choices=["auto", "engine", "trl", "dataset", "none"]
    )
    dtype: str = _option("float32", "Weights' dtype: float32, bfloat16 or float16.")
    push_to: str | None = _option(None, "Push the model to this Hub repo.", metavar="REPO_ID")
    private: bool = _option(False, "Create the Hub repo private.")
    token: str | None = _option(None, "Hub token (default: HF_TOKEN or the saved login).")
    base_model: str | None = _option(None, "Base model's Hub id for the card (if --model is a path).")
    dataset_name: str | None = _option(None, "Dataset's Hub id for the card (if DATASET is a path).")


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples kept as written, defaults shown."""


def register(sub: Any) -> None:
    """List the ``train`` command; its arguments are parsed by :func:`run_argv`, which loads TRL."""
    sub.add_parser("train", help=HELP, description=DESCRIPTION, add_help=False)


def build_parser() -> Any:
    """The ``real-hub train`` parser: the dataset, :class:`TrainOptions`, and every ``DPOConfig`` field."""
    from transformers import HfArgumentParser
    from trl import DPOConfig

    from ..train.dpo import DPO_DEFAULTS, machine_defaults

    parser = HfArgumentParser(
        [TrainOptions, DPOConfig],
        prog="real-hub train",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=_Formatter,
        conflict_handler="resolve",  # --debug is real-hub's traceback switch, not TrainingArguments.debug
    )
    parser.add_argument("dataset", metavar="DATASET", help="Curated folder, data file or Hub dataset id.")
    add_common_options(parser)
    # real-hub's defaults where TRL's do not fit; output_dir None: <model name>-DPO
    parser.set_defaults(**DPO_DEFAULTS, **machine_defaults(), output_dir=None)
    return parser


def run_argv(argv: list[str]) -> int:
    """Parse ``real-hub train``'s arguments and run it behind the command-line error boundary."""
    parser = build_parser()
    namespace = parser.parse_args(argv)
    namespace.func = lambda ns: run(ns)
    return run_command(namespace.func, namespace)


def dpo_args(namespace: argparse.Namespace) -> Any:
    """The ``DPOConfig`` of the parsed flags (output folder ``<model name>-DPO`` unless given)."""
    from trl import DPOConfig

    own = {"debug"}  # real-hub's --debug (TrainingArguments.debug keeps its default)
    values = {
        f.name: getattr(namespace, f.name)
        for f in dataclasses.fields(DPOConfig)
        if f.init and f.name not in own
    }
    if values["output_dir"] is None:
        values["output_dir"] = f"{Path(namespace.model.rstrip('/')).name}-DPO"
    if namespace.quiet:
        values["disable_tqdm"] = True
    for reserved, flag in (("push_to_hub", "--push-to REPO_ID"), ("hub_token", "--token")):
        if values.get(reserved):
            raise CLIError(f"--{reserved} is not used by real-hub train: give {flag}")
    return DPOConfig(**values)


def main(namespace: argparse.Namespace) -> TrainResult:
    """Run :func:`real_hub.train_dpo` with the parsed options."""
    from ..train.dpo import HubOptions, ModelSource, train_dpo

    opts = TrainOptions(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(TrainOptions)})
    return train_dpo(
        namespace.dataset,
        ModelSource(opts.model, dtype=opts.dtype),
        dpo_args(namespace),
        config=opts.config,
        split=opts.split,
        eval_split=opts.eval_split,
        lora=opts.lora,
        precompute_ref=opts.precompute_ref,
        hub=HubOptions(
            push_to=opts.push_to,
            private=opts.private,
            token=opts.token,
            base_model=opts.base_model,
            dataset_name=opts.dataset_name,
        ),
        **({"lora_r": opts.lora_r, "lora_alpha": opts.lora_alpha} if opts.lora else {}),
    )


def run(namespace: argparse.Namespace) -> int:
    """Train and print the final metrics, the loss and where the model went."""
    result = main(namespace)
    rows = [{"metric": k, "value": v} for k, v in sorted(result.metrics.items())]
    print(format_table(rows))
    print(
        f"loss {result.first_loss:.4f} -> {result.final_loss:.4f} over {len(result.losses)} logged steps; "
        f"{result.rows_trained} pairs trained on ({result.rows_dropped} dropped: prompt fills --max_length); "
        f"reference log-probs: {result.ref_logps_source}"
    )
    print(f"wrote {result.output_dir} (model card {result.card_path})")
    if result.pushed_to:
        print(f"pushed to {result.pushed_to} (AutoModelForCausalLM.from_pretrained({result.pushed_to!r}))")
    return 0
