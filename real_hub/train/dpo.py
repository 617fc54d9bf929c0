r"""DPO on a curated preference set with TRL's ``DPOTrainer``; reference log-probs from real-hub's engine.

Usage::

    # full fine-tuning on one config of a curated set (a folder written by `real-hub curate`, or a Hub id)
    real-hub train hh-real --config dissimilar --model HuggingFaceTB/SmolLM2-135M-Instruct \
        --output-dir smol-dpo --max-steps 200 --lr 5e-7

    # LoRA adapters, pushed to the Hub with a model card
    real-hub train me/hh-real --config dissimilar --model HuggingFaceTB/SmolLM2-135M-Instruct \
        --lora --push-to me/smol-dpo-lora

    # from Python
    from real_hub import train_dpo
    result = train_dpo("hh-real", "path/to/model", config="dissimilar", output_dir="out", max_steps=100)
    result = train_dpo(pairs, ModelSource("org/model", dtype="bfloat16"), DPOConfig(output_dir="out"),
                       lora=True, hub=HubOptions(push_to="me/model-dpo"))
    print(result.losses, result.metrics["rewards/accuracies"])

The data are TRL preference pairs, standard (``prompt``/``chosen``/``rejected`` strings) or conversational
(message lists; string responses to message prompts are converted with :func:`real_hub.to_trl`). Other
columns are dropped.

Reference log-probs (``precompute_ref``):

- ``"auto"`` (default): ``"dataset"`` when the data carry ``ref_chosen_logps``/``ref_rejected_logps`` that
  :func:`real_hub.add_reference_logps` computed for this model, revision, precision, ``max_length`` and
  ``truncation_mode`` (as the card of a curated folder, Hub id or :class:`~real_hub.CuratedSet` records),
  else ``"engine"``.
- ``"engine"``: :func:`real_hub.logprobs.score_encoded` over exactly the token ids TRL scores for
  the policy: TRL's own tokenization of prompt and completion (its ``prompt_ids``/``chosen_ids``/
  ``rejected_ids``, EOS added to standard completions, chat template for conversational ones), cut as TRL's
  collator cuts them (``max_length``, ``truncation_mode``), first sequence position never scored. With LoRA
  the reference is the model with its adapters disabled, as in TRL. Under mixed precision (``bf16``/``fp16``,
  which ``train_dpo`` turns on by itself on a GPU with bf16) the policy's log-probs come from TRL's forward
  under autocast, so the reference is computed by TRL's own pass at that precision instead (the engine scores
  in fp32, which would start the loss away from log 2); :attr:`TrainResult.ref_logps_source` then says
  ``"trl"``.
- ``"trl"``: TRL's own precompute pass (a full forward per batch).
- ``"dataset"``: the ``ref_chosen_logps``/``ref_rejected_logps`` columns of the data, used as they are.
- ``"none"``: no precompute; TRL keeps a reference model and runs it at every step.

Why a subclass: in TRL 1.16 ``DPOTrainer.__init__`` calls ``self._precompute_ref_logps(dataset, name,
batch_size)`` for the train and eval sets whenever ``precompute_ref_log_probs=True``, and that method always
runs the reference model, even when the columns exist (then fails on the duplicated columns).
:func:`dpo_trainer_class` overrides that one method; ``tests/test_train.py`` fails if TRL changes this path.

The model card and the push live in :mod:`real_hub.train.model_card`; the ``real-hub train`` command in
:mod:`real_hub.cli.train`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import check_writable, output_errors, write_text_atomic
from ..errors import ColumnError, ConfigError
from ..options import TRL_MAX_LENGTH
from ..schema import PREFERENCE_COLUMNS, REF_COLUMNS
from .model_card import build_model_card, push_folder
from .reference import ReferenceSpec, dpo_trainer_class, model_dtype

logger = logging.getLogger(__name__)

PRECOMPUTE_REF = ("auto", "engine", "trl", "dataset", "none")
_RESERVED = {"precompute_ref_log_probs", "hub_token", "push_to_hub", "hub_model_id"}


@dataclass
class TrainResult:
    """What :func:`train_dpo` did.

    Attributes:
        output_dir: Folder with the trained model (or LoRA adapter), tokenizer and model card.
        metrics: Final metrics: TRL's last logged training values (``loss``, ``rewards/*``, ``logps/*``),
            the run's totals (``train_loss``, ``train_runtime``, ...) and ``eval_*`` with an eval split.
        losses: Training loss at each logging step.
        ref_logps_source: Where the reference log-probs came from: ``engine``, ``trl``, ``dataset``, ``none``.
        rows_in: Training pairs given.
        rows_trained: Pairs trained on (TRL drops pairs whose prompt alone fills ``max_length``).
        card_path: The model card written into ``output_dir``.
        pushed_to: Hub repo the folder was pushed to, if any.
        training_args: The training arguments recorded in the card.
    """

    output_dir: str
    metrics: dict[str, float]
    losses: list[float]
    ref_logps_source: str
    rows_in: int
    rows_trained: int
    card_path: str
    pushed_to: str | None = None
    training_args: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_dropped(self) -> int:
        """Pairs TRL dropped because their prompt alone fills ``max_length``."""
        return self.rows_in - self.rows_trained

    @property
    def first_loss(self) -> float:
        """The first logged training loss."""
        return self.losses[0] if self.losses else math.nan

    @property
    def final_loss(self) -> float:
        """The last logged training loss."""
        return self.losses[-1] if self.losses else math.nan


@dataclass(frozen=True)
class ModelSource:
    """A model for :func:`train_dpo` to load by name, and how to load it.

    Attributes:
        name: Hub id, local folder, or packaged model name.
        revision: Its Hub revision (None: the default branch).
        dtype: The weights' dtype: ``float32``, ``bfloat16`` or ``float16``.
        trust_remote_code: Allow the model's own code.
    """

    name: str
    revision: str | None = None
    dtype: str | None = "float32"
    trust_remote_code: bool = False


@dataclass(frozen=True)
class HubOptions:
    """Where :func:`train_dpo` pushes the trained model, and what its card names.

    Attributes:
        push_to: Hub model repo to upload the output folder to (None: no push, the card is still written).
        private: Create that repo private.
        token: Hub token (default: ``HF_TOKEN`` or the saved login); never logged.
        base_model: The base model's name for the card (default: the model as given); the card's metadata
            lists it only when it is a Hub id.
        dataset_name: The dataset's name for the card (default: the dataset as given), same rule.
    """

    push_to: str | None = None
    private: bool = False
    token: str | None = None
    base_model: str | None = None
    dataset_name: str | None = None


# ---------------------------------------------------------------------------------------------------- data


def load_preferences(data: Any, *, config: str | None = None, split: str = "train") -> Any:
    """A ``Dataset`` of TRL preference pairs from a ``Dataset``, ``DatasetDict``, files, a folder or a Hub id.

    Keeps ``prompt``/``chosen``/``rejected`` (and the reference columns when both are present); message
    prompts with string responses become TRL's conversational format.

    Raises:
        ColumnError: A pair column is missing (the error lists the columns there are).
        ConfigError: A ``DatasetDict`` without ``split``.
    """
    from datasets import Dataset, DatasetDict

    from ..convert import to_trl
    from ..hub.curated import CuratedSet
    from ..hub.sources import load_source

    if isinstance(data, CuratedSet):
        data = data.dataset
    if isinstance(data, DatasetDict):
        if split not in data:
            raise ConfigError(f"the DatasetDict has no split {split!r}; it has {list(data)}")
        data = data[split]
    elif not isinstance(data, Dataset):
        data = load_source(str(data), split=split, config=config)
    missing = [c for c in PREFERENCE_COLUMNS if c not in data.column_names]
    if missing:
        raise ColumnError.missing(
            missing,
            data.column_names,
            hint="DPO needs preference pairs; make them with `real-hub curate` (or real_hub.to_pairs)",
        )
    keep = list(PREFERENCE_COLUMNS) + [c for c in REF_COLUMNS if set(REF_COLUMNS) <= set(data.column_names)]
    data = data.select_columns(keep)
    return to_trl(data)


# --------------------------------------------------------------------------------------------------- train


def recorded_reference(data: Any, config: str | None) -> ReferenceSpec | None:
    """The :class:`ReferenceSpec` a curated set's card records for its reference log-probs, if any.

    ``data`` is a :class:`~real_hub.CuratedSet`, or a folder or Hub id with a real-hub card (``config`` names
    the config; None when the card lists one only). Anything else, or a card that cannot be read: None.
    """
    from ..hub.curated import CuratedSet, card_configs, existing_card
    from ..hub.dataset_card import read_metadata

    if isinstance(data, CuratedSet):
        reference = data.provenance.reference
        return ReferenceSpec.from_dict(reference) if reference else None
    if not isinstance(data, (str, Path)):
        return None
    try:
        path = Path(data)
        if path.exists():
            card = existing_card(path) if path.is_dir() else None
        else:
            from huggingface_hub import DatasetCard, hf_hub_download

            card = DatasetCard.load(hf_hub_download(str(data), "README.md", repo_type="dataset"))
    except Exception as err:  # no card, no access: nothing recorded (the engine computes the reference)
        logger.info("No dataset card read for %s (%s): reference log-probs are recomputed", data, err)
        return None
    names = card_configs(card)
    if config is None and len(names) == 1:
        config = names[0]
    if card is None or config is None:
        return None
    reference = read_metadata(card, config)[0].reference
    return ReferenceSpec.from_dict(reference) if reference else None


def _resolve_ref(
    precompute_ref: str, data: Any, config: str | None, columns: list[str], wanted: ReferenceSpec
) -> str:
    """``"auto"`` resolved: the data's reference columns when recorded for ``wanted``, else the engine."""
    if precompute_ref != "auto":
        return precompute_ref
    if not set(REF_COLUMNS) <= set(columns):
        return "engine"
    recorded = recorded_reference(data, config)
    if recorded == wanted:
        logger.info("Using the data's reference log-probs: recorded for %s", wanted)
        return "dataset"
    logger.info(
        "Recomputing reference log-probs: the data's are recorded for %s, this run needs %s",
        recorded or "an unrecorded model",
        wanted,
    )
    return "engine"


def _dataset_name(dataset: Any) -> str:
    from ..hub.curated import CuratedSet

    if isinstance(dataset, (str, Path)):
        return str(dataset)
    return f"curated config {dataset.config}" if isinstance(dataset, CuratedSet) else "in-memory dataset"


def _load_model(source: ModelSource) -> Any:
    from ..models import read_causal_lm

    return read_causal_lm(
        source.name, revision=source.revision, dtype=source.dtype, trust_remote_code=source.trust_remote_code
    )


#: The DPOConfig values real-hub uses where TRL's defaults do not fit preference curation runs.
DPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 5e-7,
    "num_train_epochs": 1.0,
    "max_length": TRL_MAX_LENGTH,
    "per_device_train_batch_size": 4,
    "seed": 0,
    "report_to": "none",
    "logging_steps": 1,
    "save_strategy": "no",
}
#: LoRA options accepted as keyword arguments, in the names of TRL's ``ModelConfig``.
LORA_DEFAULTS: dict[str, Any] = {
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "lora_target_modules": "all-linear",
}


def machine_defaults() -> dict[str, Any]:
    """The ``DPOConfig`` values that follow the machine.

    bf16 and gradient checkpointing only on a GPU with bf16 (TRL's default, bf16, stops a CPU run), the CPU
    otherwise; no progress bars when real-hub's logging is quieter than INFO.
    """
    import torch

    gpu = torch.cuda.is_available()
    return {
        "bf16": gpu and torch.cuda.is_bf16_supported(),
        "use_cpu": not gpu,
        "gradient_checkpointing": gpu,
        "disable_tqdm": logging.getLogger("real_hub").getEffectiveLevel() > logging.INFO,
    }


def dpo_config(args: Any, precompute_ref: str, options: Mapping[str, Any]) -> Any:
    """The ``DPOConfig`` of a run: ``args`` (or real-hub's defaults) updated with ``options``.

    Precision and device follow the machine (bf16 and gradient checkpointing on a GPU that has bf16, the
    CPU otherwise) unless given.
    """
    import dataclasses

    from trl import DPOConfig

    if precompute_ref not in PRECOMPUTE_REF:
        raise ConfigError(
            f"precompute_ref must be one of {', '.join(PRECOMPUTE_REF)}; got {precompute_ref!r}"
        )
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(DPOConfig)})
    if unknown:
        raise ConfigError(f"unknown DPOConfig field(s) {', '.join(unknown)}")
    reserved = sorted(set(options) & _RESERVED)
    if reserved:
        raise ConfigError(
            f"{', '.join(reserved)} are set by train_dpo: use precompute_ref= and "
            "hub=HubOptions(push_to=, token=)"
        )
    if args is not None and not isinstance(args, DPOConfig):
        raise ConfigError(f"args must be a trl.DPOConfig, got {type(args).__name__}")
    if args is None and "output_dir" not in options:
        raise ConfigError("give output_dir= (or args=DPOConfig(output_dir=...))")
    values: dict[str, Any] = {} if args is not None else {**DPO_DEFAULTS, **machine_defaults()}
    values.update(options)
    values["precompute_ref_log_probs"] = precompute_ref != "none"
    if "output_dir" in values:
        values["output_dir"] = str(values["output_dir"])
    if args is None:
        return DPOConfig(**values)
    return dataclasses.replace(args, **values)


def lora_config(lora: Any, options: dict[str, Any]) -> Any:
    """A peft ``LoraConfig`` from ``lora`` (True, or a LoraConfig) and the ``lora_*`` options; pops them."""
    given = {k: options.pop(k) for k in list(options) if k in LORA_DEFAULTS}
    if not lora:
        if given:
            raise ConfigError(f"{', '.join(sorted(given))} need lora=True")
        return None
    from peft import LoraConfig

    if isinstance(lora, LoraConfig):
        return lora
    values = {**LORA_DEFAULTS, **given}
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=values["lora_r"],
        lora_alpha=values["lora_alpha"],
        lora_dropout=values["lora_dropout"],
        target_modules=values["lora_target_modules"],
    )


def _log_metrics_not_print(trainer: Any) -> None:
    """Send the trainer's per-step metric dicts to the log at DEBUG instead of printing them to stdout.

    ``transformers`` prints each logged dict (through its progress bar, or ``PrinterCallback`` without one);
    :class:`TrainResult` holds them all, and ``real-hub train`` prints its own table, so they would show
    twice. The progress bar itself stays.
    """
    from transformers import PrinterCallback, ProgressCallback

    class _ProgressBar(ProgressCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if state.is_world_process_zero and logs:
                logger.debug("step %s: %s", state.global_step, logs)

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_ProgressBar)


def _numbers(values: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if k not in skip and isinstance(v, (int, float))}


def _models(model: Any, *, need_ref: bool) -> tuple[Any, Any, Any, ModelSource]:
    """(policy, tokenizer, reference model or None, where it came from) from a name or a loaded model."""
    if isinstance(model, (str, Path)):
        model = ModelSource(str(model))
    if isinstance(model, ModelSource):
        policy, tokenizer = _load_model(model)
        ref = _load_model(model)[0] if need_ref else None  # our own copy, as TRL would reload it
        return policy, tokenizer, ref, model
    if not (isinstance(model, tuple) and len(model) == 2):
        raise ConfigError(
            "model must be a name (Hub id or folder), a ModelSource, or a loaded (model, tokenizer) pair; "
            f"got {type(model).__name__}"
        )
    import copy

    policy, tokenizer = model
    ref = (
        copy.deepcopy(policy).eval() if need_ref else None
    )  # TRL would reload it from a path it may not have
    name = getattr(policy, "name_or_path", "") or type(policy).__name__
    return policy, tokenizer, ref, ModelSource(name, dtype=model_dtype(policy))


def train_dpo(
    dataset: Any,
    model: Any,
    args: Any = None,
    *,
    config: str | None = None,
    split: str = "train",
    eval_split: str | None = None,
    lora: Any = False,
    precompute_ref: str = "auto",
    hub: HubOptions | None = None,
    **options: Any,
) -> TrainResult:
    """Train ``model`` with DPO on a curated preference set; save it with a model card; optionally push it.

    Args:
        dataset: A ``Dataset``/``DatasetDict``, data files, a Hub-layout folder or a Hub dataset id.
        model: A model folder, Hub id or packaged model name; a :class:`ModelSource` (revision, dtype,
            remote code); or a loaded ``(model, tokenizer)`` pair.
        args: TRL's ``DPOConfig`` for the run; without it, real-hub's defaults (:data:`DPO_DEFAULTS`).
        config: Config of a folder or Hub dataset (e.g. the selection strategy).
        split: Split to train on.
        eval_split: Split to evaluate on after training (its metrics are ``eval_*``).
        lora: Train LoRA adapters (``peft``) instead of all weights: True (options ``lora_r``, ``lora_alpha``,
            ``lora_dropout``, ``lora_target_modules`` as in TRL's ``ModelConfig``) or a ``LoraConfig``.
        precompute_ref: ``auto``, ``engine``, ``trl``, ``dataset`` or ``none`` (see the module docstring).
        hub: Where to push the trained model and what its card names (:class:`HubOptions`).
        **options: ``trl.DPOConfig`` fields (``output_dir``, ``beta``, ``learning_rate``, ``max_steps``,
            ``max_length``, ``per_device_train_batch_size``, ``loss_type``, ...) and the ``lora_*`` options;
            they override ``args``.

    Raises:
        ColumnError: The data lack ``prompt``/``chosen``/``rejected`` (or the reference columns).
        ConfigError: An unknown ``precompute_ref`` or ``DPOConfig`` field, or one train_dpo sets itself.
        ModelNotFoundError, HubError: The model cannot be loaded; the push failed.
        OutputError: ``output_dir`` cannot be written (checked before anything loads).
    """
    hub = hub or HubOptions()
    options = dict(options)
    peft_config = lora_config(lora, options)
    dpo_args = dpo_config(args, precompute_ref, options)
    if dpo_args.output_dir:  # before the models load and train, not when the model is saved
        check_writable(dpo_args.output_dir)
    if eval_split and type(dataset).__name__ == "Dataset":
        raise ConfigError(
            "a Dataset has no splits: pass a DatasetDict (or a folder/Hub id) to use eval_split"
        )
    train_set = load_preferences(dataset, config=config, split=split)
    eval_set = load_preferences(dataset, config=config, split=eval_split) if eval_split else None
    policy, tokenizer, ref_model, source = _models(
        model, need_ref=precompute_ref == "none" and not peft_config
    )
    wanted = ReferenceSpec(
        source.name, source.revision, model_dtype(policy), dpo_args.max_length, dpo_args.truncation_mode
    )
    precompute_ref = _resolve_ref(precompute_ref, dataset, config, train_set.column_names, wanted)
    train_set, eval_set = _reference_columns(precompute_ref, train_set, eval_set)
    trainer = dpo_trainer_class()(
        model=policy,
        ref_model=ref_model,
        args=dpo_args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=peft_config,
        **({"ref_logps": precompute_ref} if precompute_ref != "none" else {}),
    )
    _log_metrics_not_print(trainer)
    rows_trained = len(trainer.train_dataset)
    if rows_trained < len(train_set):
        logger.warning(
            "%d of %d pairs were dropped: their prompt alone fills max_length=%s",
            len(train_set) - rows_trained,
            len(train_set),
            dpo_args.max_length,
        )
    losses, metrics = _train(trainer, evaluate=eval_set is not None)
    output_dir = dpo_args.output_dir
    trainer.save_model(str(output_dir))
    recorded = _recorded_args(dpo_args, options, peft_config, precompute_ref)
    card = build_model_card(
        base_model=hub.base_model or source.name,
        dataset=hub.dataset_name or _dataset_name(dataset),
        dataset_config=config,
        split=split,
        training_args=recorded,
        metrics=metrics,
        lora=peft_config is not None,
        repo_id=hub.push_to,
    )
    card_path = Path(output_dir) / "README.md"
    with output_errors(output_dir, "writing the model card"):
        write_text_atomic(card_path, str(card))
    pushed = (
        push_folder(output_dir, hub.push_to, private=hub.private, token=hub.token) if hub.push_to else None
    )
    return TrainResult(
        output_dir=str(output_dir),
        metrics=metrics,
        losses=losses,
        ref_logps_source=trainer.ref_logps_used if precompute_ref == "engine" else precompute_ref,
        rows_in=len(train_set),
        rows_trained=rows_trained,
        card_path=str(card_path),
        pushed_to=pushed,
        training_args=recorded,
    )


def _reference_columns(precompute_ref: str, train_set: Any, eval_set: Any) -> tuple[Any, Any]:
    """The train and eval sets with their reference columns checked (``dataset``) or dropped (otherwise)."""
    if precompute_ref == "dataset" and not set(REF_COLUMNS) <= set(train_set.column_names):
        raise ColumnError.missing(REF_COLUMNS, train_set.column_names, hint="or use precompute_ref='engine'")
    if precompute_ref != "dataset" and set(REF_COLUMNS) <= set(train_set.column_names):
        logger.info("Ignoring the data's reference columns (precompute_ref=%r)", precompute_ref)
        train_set = train_set.remove_columns(list(REF_COLUMNS))
        if eval_set is not None:
            eval_set = eval_set.remove_columns([c for c in REF_COLUMNS if c in eval_set.column_names])
    return train_set, eval_set


def _train(trainer: Any, *, evaluate: bool) -> tuple[list[float], dict[str, float]]:
    """Train (then evaluate); the logged losses, and the last logged values with the run's totals."""
    output = trainer.train()
    history = trainer.state.log_history
    losses = [float(h["loss"]) for h in history if "loss" in h]
    last = next((h for h in reversed(history) if "loss" in h), {})
    metrics = {**_numbers(last, skip=("epoch", "step")), **_numbers(output.metrics)}
    if evaluate:
        metrics.update(_numbers(trainer.evaluate()))
    return losses, metrics


_RECORDED = (
    "beta",
    "learning_rate",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "seed",
    "report_to",
    "logging_steps",
    "save_strategy",
    "bf16",
    "use_cpu",
    "gradient_checkpointing",
    "disable_tqdm",
)


def _recorded_args(dpo_args: Any, options: Mapping[str, Any], peft_config: Any, precompute_ref: str) -> dict:
    """The training arguments the model card records: the main DPOConfig fields, those given, LoRA's."""
    recorded = {name: getattr(dpo_args, name) for name in (*_RECORDED, *options)}
    if isinstance(recorded.get("report_to"), list) and len(recorded["report_to"]) <= 1:
        recorded["report_to"] = recorded["report_to"][0] if recorded["report_to"] else "none"
    save = recorded.get("save_strategy")
    recorded["save_strategy"] = getattr(save, "value", save)
    if peft_config is not None:
        recorded.update(
            lora_r=peft_config.r,
            lora_alpha=peft_config.lora_alpha,
            lora_dropout=peft_config.lora_dropout,
            lora_target_modules=peft_config.target_modules,
        )
    recorded["precompute_ref"] = precompute_ref
    return recorded
