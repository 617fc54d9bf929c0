"""Reference log-probs for DPO from real-hub's engine, over exactly the token ids TRL scores.

:func:`add_reference_logps` stores them in a curated set (``ref_chosen_logps``/``ref_rejected_logps``) with a
:class:`ReferenceSpec` of the model, revision, precision and TRL settings they belong to; the card records it,
and :func:`real_hub.train_dpo` uses the columns when it trains that model with those settings.
:func:`dpo_trainer_class` builds TRL's ``DPOTrainer`` whose reference pass is real-hub's: TRL's own pass
always runs the reference model, even when the columns exist; the one call it is routed through is TRL's
internal, kept in :mod:`real_hub.compat` with a test.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..compat import route_trl_precompute, trl_precompute
from ..errors import ColumnError, ConfigError
from ..logprobs import EncodedPair
from ..options import TRL_MAX_LENGTH
from ..schema import REF_COLUMNS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceSpec:
    """What reference log-probs belong to: the model, its revision and precision, and TRL's cut of the tokens.

    Attributes:
        model: The model as named when loading it (Hub id or folder).
        revision: Its Hub revision (None: the default branch).
        dtype: The precision its weights ran in (``float32``, ``bfloat16``, ``float16``).
        max_length: TRL's ``max_length`` (prompt + completion tokens kept).
        truncation_mode: TRL's ``truncation_mode`` (``keep_start`` or ``keep_end``).
    """

    model: str
    revision: str | None = None
    dtype: str = "float32"
    max_length: int | None = TRL_MAX_LENGTH
    truncation_mode: str = "keep_start"

    def to_dict(self) -> dict[str, Any]:
        """The fields, for the card's provenance."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceSpec:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def model_dtype(model: Any) -> str:
    """The precision of a loaded model's weights, as ``float32``/``bfloat16``/``float16``."""
    dtype = getattr(model, "dtype", None)
    if dtype is None:
        dtype = next(model.parameters()).dtype
    return str(dtype).removeprefix("torch.")


def add_reference_logps(
    pairs: Any,
    model: Any,
    *,
    tokenizer: Any = None,
    revision: str | None = None,
    dtype: str | None = "float32",
    max_length: int | None = TRL_MAX_LENGTH,
    truncation_mode: str = "keep_start",
    batch_size: int = 16,
    trust_remote_code: bool = False,
) -> tuple[Any, ReferenceSpec]:
    """Add ``model``'s reference log-probs to preference pairs (``ref_chosen_logps``/``ref_rejected_logps``).

    The pairs are tokenized by TRL's own ``DPOTrainer`` (chat template for conversational pairs, EOS added to
    standard ones) and cut as its collator cuts them (``max_length``, ``truncation_mode``); the engine then
    sums the completion log-probs. Pairs TRL would drop (the prompt alone fills ``max_length``) get None.

    Args:
        pairs: A ``Dataset`` of preference pairs (canonical or TRL format); other columns are kept.
        model: A model folder or Hub id, or a loaded causal LM (then pass ``tokenizer``).
        tokenizer: The tokenizer of a loaded ``model``.
        revision: Revision of a Hub ``model``.
        dtype: Precision to load ``model`` in.
        max_length: TRL's ``max_length`` the values are for.
        truncation_mode: TRL's ``truncation_mode`` the values are for.
        batch_size: Sequences per engine batch.
        trust_remote_code: Allow a model's own code.

    Returns:
        The pairs in TRL's format with the two columns (replaced if present), and the :class:`ReferenceSpec`
        to record beside them (``curate`` writes it into the card's provenance).
    """
    import torch
    from trl import DPOConfig

    from ..convert import to_trl

    if isinstance(model, str):
        from ..models import read_causal_lm

        name = model
        model, tokenizer = read_causal_lm(
            name, revision=revision, dtype=dtype, trust_remote_code=trust_remote_code
        )
    else:
        name = getattr(model, "name_or_path", "") or type(model).__name__
        if tokenizer is None:
            raise ConfigError("a loaded model needs its tokenizer: pass tokenizer=")
    spec = ReferenceSpec(name, revision, model_dtype(model), max_length, truncation_mode)
    data = to_trl(pairs)
    present = [c for c in REF_COLUMNS if c in data.column_names]
    if present:
        data = data.remove_columns(present)
    work = data.select_columns(["prompt", "chosen", "rejected"]).add_column("_row", list(range(len(data))))
    gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="real-hub-ref-") as tmp:
        args = DPOConfig(
            output_dir=tmp,
            precompute_ref_log_probs=True,
            precompute_ref_batch_size=batch_size,
            max_length=max_length,
            truncation_mode=truncation_mode,
            report_to="none",
            use_cpu=not gpu,
            bf16=False,
            disable_tqdm=True,
        )
        trainer = dpo_trainer_class()(
            model=model, args=args, train_dataset=work, processing_class=tokenizer, ref_logps="engine"
        )
        scored = trainer.train_dataset.select_columns(["_row", *REF_COLUMNS])
    values: dict[str, list[float | None]] = {c: [None] * len(data) for c in REF_COLUMNS}
    for row, chosen, rejected in zip(
        scored["_row"], scored[REF_COLUMNS[0]], scored[REF_COLUMNS[1]], strict=True
    ):
        values[REF_COLUMNS[0]][row] = chosen
        values[REF_COLUMNS[1]][row] = rejected
    dropped = len(data) - len(scored)
    if dropped:
        logger.warning(
            "%d pairs have no reference log-probs: their prompt alone fills max_length=%s",
            dropped,
            max_length,
        )
    from datasets import Value

    for column in REF_COLUMNS:
        data = data.add_column(column, values[column], feature=Value("float64"))
    return data, spec


def scored_pair(
    prompt_ids: Sequence[int],
    completion_ids: Sequence[int],
    max_length: int | None,
    truncation_mode: str = "keep_start",
) -> EncodedPair | None:
    """The (context, scored ids) that TRL's DPO collator and loss use for one completion.

    The collator joins ``prompt_ids + completion_ids`` and cuts the sequence to ``max_length`` (keeping the
    start or the end); the loss sums the log-probs of the completion positions after the first (position 0
    has nothing to condition on). ``None`` when no completion token is scored (TRL's sum is then 0).
    """
    ids = list(prompt_ids) + list(completion_ids)
    n_prompt = len(prompt_ids)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        if truncation_mode == "keep_start":
            ids = ids[:max_length]
        elif truncation_mode == "keep_end":
            n_prompt = max(0, n_prompt - (len(ids) - max_length))
            ids = ids[-max_length:]
        else:
            raise ConfigError(f"truncation_mode must be 'keep_start' or 'keep_end', got {truncation_mode!r}")
    start = max(1, n_prompt)
    if start >= len(ids):
        return None
    return EncodedPair(tuple(ids[:start]), tuple(ids[start:]), truncated)


def engine_ref_logps(
    model: Any,
    dataset: Any,
    *,
    max_length: int | None,
    truncation_mode: str = "keep_start",
    batch_size: int = 16,
) -> tuple[list[float], list[float]]:
    """Reference log-probs of a dataset TRL has tokenized (``prompt_ids``/``chosen_ids``/``rejected_ids``).

    Returns ``(ref_chosen_logps, ref_rejected_logps)``, summed over the tokens TRL scores (see
    :func:`scored_pair`), computed with :func:`real_hub.logprobs.score_encoded` on ``model`` in eval mode.
    """
    from ..logprobs import score_encoded

    n = len(dataset)
    pairs: list[EncodedPair | None] = []
    for column in ("chosen_ids", "rejected_ids"):
        for prompt, completion in zip(dataset["prompt_ids"], dataset[column], strict=True):
            pairs.append(scored_pair(prompt, completion, max_length, truncation_mode))
    scored = [p for p in pairs if p is not None]
    was_training = model.training
    model.eval()
    try:
        logp = iter(score_encoded(model, scored, batch_size=batch_size).logp.tolist())
    finally:
        model.train(was_training)
    values = [next(logp) if p is not None else 0.0 for p in pairs]
    return values[:n], values[n:]


@functools.cache
def dpo_trainer_class() -> type:
    """TRL's ``DPOTrainer`` with reference log-probs from the engine or the data (built on first use).

    The subclass takes one extra keyword, ``ref_logps`` (``"engine"``, ``"trl"`` or ``"dataset"``); TRL's
    reference pass over the tokenized train/eval set (``precompute_ref_log_probs=True``) becomes its
    :meth:`reference_logps` (:func:`real_hub.compat.route_trl_precompute`).
    """
    from trl import DPOTrainer

    class RealHubDPOTrainer(DPOTrainer):
        """``DPOTrainer`` taking reference log-probs from the engine, the data, or TRL (``ref_logps``)."""

        def __init__(self, *args: Any, ref_logps: str = "engine", **kwargs: Any) -> None:
            if ref_logps not in ("engine", "trl", "dataset"):
                raise ConfigError(f"ref_logps must be 'engine', 'trl' or 'dataset', got {ref_logps!r}")
            self.ref_logps = ref_logps  # read by reference_logps, which DPOTrainer.__init__ calls
            self.ref_logps_used = ref_logps  # "trl" when mixed precision made the engine step aside
            super().__init__(*args, **kwargs)

        def reference_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
            """The ``dataset`` with reference log-probs: its own columns, the engine's, or TRL's."""
            if len(dataset) == 0:  # TRL's pass would fail on torch.cat([]) with an obscure error
                raise ConfigError(
                    f"no {name} pair is left: every prompt alone fills max_length={self.args.max_length}; "
                    "raise max_length"
                )
            present = set(REF_COLUMNS) & set(dataset.column_names)
            if self.ref_logps == "dataset":
                if len(present) < len(REF_COLUMNS):
                    raise ColumnError.missing(
                        REF_COLUMNS, dataset.column_names, hint="or use precompute_ref='engine'"
                    )
                logger.info("Using the reference log-probs of the %s data as they are", name)
                return dataset
            if present:
                dataset = dataset.remove_columns(sorted(present))
            if self.ref_logps == "trl":
                return trl_precompute(self, dataset, name, batch_size)
            if self.args.bf16 or self.args.fp16:
                # The policy's log-probs come from TRL's forward under mixed-precision autocast; the
                # reference must be computed the same way, or the loss starts away from log 2 (the engine
                # scores in fp32).
                logger.info(
                    "Computing reference log-probs of the %s data with TRL's pass: training runs in %s and "
                    "the reference must match the policy's precision",
                    name,
                    "bf16" if self.args.bf16 else "fp16",
                )
                self.ref_logps_used = "trl"
                return trl_precompute(self, dataset, name, batch_size)
            if self.args.ld_alpha is not None:
                raise ConfigError("ld_alpha weights reference log-probs per token; use precompute_ref='trl'")
            logger.info(
                "Computing reference log-probs of the %s data (%d pairs) with the engine", name, len(dataset)
            )
            model = self.accelerator.unwrap_model(self.ref_model or self.model)
            kwargs = {
                "max_length": self.args.max_length,
                "truncation_mode": self.args.truncation_mode,
                "batch_size": self.args.precompute_ref_batch_size or 16,
            }
            if self.ref_model is None and hasattr(model, "disable_adapter"):  # PEFT: reference = no adapters
                with model.disable_adapter():
                    chosen, rejected = engine_ref_logps(model.get_base_model(), dataset, **kwargs)
            else:
                chosen, rejected = engine_ref_logps(model, dataset, **kwargs)
            return dataset.add_column(REF_COLUMNS[0], chosen).add_column(REF_COLUMNS[1], rejected)

    return route_trl_precompute(RealHubDPOTrainer, "reference_logps")
