"""The options of a curation run, read by both engines and by the ``curate`` command's flags.

Light on purpose: ``real-hub curate --help`` builds its flags from :class:`CurateOptions` without
loading ``datasets`` or torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .dedup.settings import DEFAULT_THRESHOLD as DEFAULT_DEDUP_THRESHOLD
from .errors import ConfigError, flag, option
from .formats import SOURCES
from .models import DEFAULT_EMBEDDER


def _option(default: Any, help: str, **cli: Any) -> Any:
    """A :class:`CurateOptions` field: its default, its help text and how the ``curate`` command shows it."""
    return field(default=default, metadata={"help": help, **cli})


ENGINES = ("datasets", "ray")
#: TRL's ``max_length`` default (prompt + completion tokens): what reference log-probs and DPO runs use.
TRL_MAX_LENGTH = 1024


@dataclass
class CurateOptions:
    """Everything that shapes a curated set (recorded in its card).

    Each field is also a flag of ``real-hub curate`` (``--name-with-dashes`` unless its metadata names
    another), with the default, help text and group written here once.
    """

    source_format: str = _option(
        "auto", "Source schema; auto: detected from the columns.", flag="--format",
        choices=("auto", *SOURCES), group="input",
    )  # fmt: skip
    split: str = _option("train", "Split of a folder or Hub id.", group="input")
    config: str | None = _option(None, "Config of a folder or Hub dataset.", group="input")
    revision: str | None = _option(None, "Hub revision of the source.", group="input")
    limit: int | None = _option(None, "Use the first N rows only.", metavar="N", group="input")
    generate: str | None = _option(
        None,
        "Prompt-only source: sample candidate responses with this causal LM (Hub id, folder or .gguf), then "
        "select pairs; with --strong/--weak the pairs are labelled by Dr.SoW reward.",
        metavar="MODEL",
        group="generation",
    )
    n: int = _option(4, "Responses generated per prompt (with --generate).", group="generation")
    max_new_tokens: int = _option(256, "Most new tokens per generated response.", group="generation")
    temperature: float = _option(0.8, "Sampling temperature (0: greedy).", group="generation")
    top_p: float = _option(0.95, "Nucleus sampling: probability mass kept.", group="generation")
    generate_backend: str = _option(
        "transformers", "Generation backend (vllm: GPU, pip install 'real-hub[vllm]').",
        choices=("transformers", "vllm"), group="generation",
    )  # fmt: skip
    generate_batch_size: int = _option(
        8, "Prompts per generation forward pass (each expands to n sequences).", group="generation"
    )
    strategy: str | None = _option(
        None,
        "dissimilar | similar | random | centroid (or REAL's easy | hard); default dissimilar. Pairwise data "
        "is selected only with --budget: without it every pair is kept, as config 'all'.",
        group="REAL selection",
    )
    budget: float | None = _option(
        None, "Keep this fraction of pairs over the whole set (e.g. 0.5).", group="REAL selection"
    )
    pairs_per_prompt: int = _option(1, "Pairs per prompt for candidates.", group="REAL selection")
    seed: int = _option(0, "Seed of the random strategy (and of generation).", group="REAL selection")
    embedder: str = _option(DEFAULT_EMBEDDER, "Embedding model.", metavar="MODEL", group="REAL selection")
    embed_backend: str = _option(
        "auto", "Embedding backend.", choices=("auto", "sentence-transformers", "causal-lm"),
        group="REAL selection",
    )  # fmt: skip
    budget_curve: str | None = _option(
        None,
        "Cite this budget_curve.json (written by `real-hub budget-curve` on the labelled pairs) in the "
        "dataset card: all pairs' accuracy, the strategy's at the budget, the annotation saved.",
        metavar="JSON",
        group="REAL selection",
    )
    strong: str | None = _option(
        None, "Better-aligned model (e.g. a DPO model).", metavar="MODEL", group="Dr.SoW rewards"
    )
    weak: str | None = _option(
        None, "Less-aligned model (e.g. its SFT parent).", metavar="MODEL", group="Dr.SoW rewards"
    )
    normalize: str = _option(
        "sum", "Reward over response tokens.", choices=("sum", "mean"), group="Dr.SoW rewards"
    )
    domain_routing: bool = _option(
        True,
        "Score with domain instructions.",
        off_help="Score without domain instructions.",
        group="Dr.SoW rewards",
    )
    label: bool = _option(False, "Orient pairs by reward (needs --strong/--weak).", group="Dr.SoW rewards")
    min_margin: float = _option(0.0, "Abstain below this reward margin.", group="Dr.SoW rewards")
    dedup: float | None = _option(
        None,
        "Drop duplicate prompts before selection: exact copies (case and whitespace aside), then "
        "near-duplicates at cosine >= THRESHOLD (0.9 when the flag has no value; put a bare --dedup after "
        "SOURCE); one row per group stays.",
        metavar="THRESHOLD",
        nargs="?",
        const=DEFAULT_DEDUP_THRESHOLD,
        group="prompt checks",
    )
    decontaminate: list[str] | None = _option(
        None,
        "Drop rows whose prompt matches a prompt of this benchmark or held-out split (a data file, folder or "
        "Hub id; every split; the prompt column after a colon, default prompt). Repeatable.",
        metavar="FILE_OR_REPO[:column]",
        group="prompt checks",
    )
    decontaminate_threshold: float = _option(
        DEFAULT_DEDUP_THRESHOLD,
        "Cosine at or above which a prompt counts as leaked.",
        metavar="THRESHOLD",
        group="prompt checks",
    )
    dedup_keep: str = _option(
        "first", "Row each duplicate group keeps.", choices=("first", "last"), group="prompt checks"
    )
    dedup_embedder: str | None = _option(
        None,
        "Prompt embedder of --dedup/--decontaminate: a backend of all-MiniLM-L6-v2 (static, "
        "sentence-transformers, onnx, openvino) or a model (default: static, distilled once).",
        metavar="MODEL",
        group="prompt checks",
    )
    batch_size: int = _option(256, "Rows per map batch.", group="processing")
    num_proc: int | None = _option(
        None, "Worker processes for map (with --engine ray: actors per model).", group="processing"
    )
    keep_embeddings: bool = _option(False, "Keep the embedding columns in the output.", group="processing")
    engine: str = _option(
        "datasets",
        "datasets: this machine; ray: Ray Data, the per-row steps on a cluster (data files, globs or fsspec "
        "URLs; pip install 'real-hub[ray]'). Both give the same pairs, report and card.",
        choices=ENGINES,
        group="scale",
    )
    ray_address: str | None = _option(
        None,
        "Ray cluster to join (host:port or ray://host:port); default RAY_ADDRESS, else this machine.",
        metavar="ADDRESS",
        group="scale",
    )
    reference: str | None = _option(
        None,
        "Add ref_chosen_logps/ref_rejected_logps of this model (the DPO policy to train).",
        metavar="MODEL",
        group="reference log-probs",
    )
    reference_revision: str | None = _option(
        None, "Hub revision of the reference.", group="reference log-probs"
    )
    reference_dtype: str = _option(
        "float32", "Precision of the reference model.", group="reference log-probs"
    )
    reference_max_length: int | None = _option(
        TRL_MAX_LENGTH, "TRL max_length the reference log-probs are for.", group="reference log-probs"
    )


#: The options that shape generation (recorded in the card's provenance with the generator).
GENERATION_OPTIONS = ("n", "max_new_tokens", "temperature", "top_p", "generate_backend")


#: The strategy recorded for pairwise data curated without a budget: every pair is kept, none selected.
NO_SELECTION = "none"
#: The config such a set is written as.
ALL_PAIRS_CONFIG = "all"


def selection_strategy(opts: CurateOptions, shape: str) -> str:
    """The strategy a run selects pairs with, aliases resolved: the config's name and the card's record.

    Candidates take ``opts.strategy`` (default ``dissimilar``). Pairwise data is selected only by a budget:
    without one every pair is kept, which is :data:`NO_SELECTION`; naming a strategy without a budget is an
    error, since nothing would select by it.
    """
    if shape == "pairs" and opts.budget is None:
        if opts.strategy is not None:
            raise ConfigError(
                f"{option('strategy', opts.strategy)} selects pairwise data by a budget: add "
                f"{option('budget', 'F', placeholder=True)} (the share of pairs to keep, e.g. 0.5), or leave "
                f"{flag('strategy')} out to keep every pair (written as config {ALL_PAIRS_CONFIG!r})"
            )
        return NO_SELECTION
    from .real.select import resolve_strategy

    strategy = resolve_strategy(opts.strategy or "dissimilar")
    if shape == "pairs" and strategy == "centroid":
        raise ConfigError(
            "the centroid strategy needs candidates; pairwise data takes dissimilar, similar or random"
        )
    return strategy


def config_for(strategy: str) -> str:
    """The config a strategy's pairs are written as (the strategy itself; ``all`` for no selection)."""
    return ALL_PAIRS_CONFIG if strategy == NO_SELECTION else strategy


# --------------------------------------------------------------------------------- the run's processors


def embed_arguments(opts: CurateOptions) -> dict[str, Any]:
    """``EmbedResponses``' arguments for a run.

    Both engines build their processors from these ``*_arguments`` functions (Ray builds one per actor).
    """
    return {"model": opts.embedder, "backend": opts.embed_backend}


def reward_arguments(opts: CurateOptions) -> dict[str, Any] | None:
    """``DensityRatioReward``'s arguments for a run, or None without a strong and a weak model."""
    if opts.strong is None:
        return None
    return {
        "strong": opts.strong,
        "weak": opts.weak or "",
        "normalize": opts.normalize,
        "domain_routing": opts.domain_routing,
    }


def selector_arguments(opts: CurateOptions) -> dict[str, Any]:
    """``SelectPairs``' options for a run (besides the strategy): pairs oriented by reward when labelling."""
    by_reward = opts.label or (opts.generate is not None and opts.strong is not None)
    return {
        "pairs_per_prompt": opts.pairs_per_prompt,
        "seed": opts.seed,
        "scores_column": "rewards" if by_reward else "scores",
    }


def generator_arguments(opts: CurateOptions) -> dict[str, Any]:
    """``GenerateResponses``' arguments for a run (``opts.generate`` is the model)."""
    return {
        "model": opts.generate or "",
        "n": opts.n,
        "max_new_tokens": opts.max_new_tokens,
        "temperature": opts.temperature,
        "top_p": opts.top_p,
        "seed": opts.seed,
        "backend": opts.generate_backend,
        "batch_size": opts.generate_batch_size,
    }


class StepTimer:
    """Seconds spent in each step of a run (``lap`` closes the step that just ended)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, step: str) -> None:
        """Record the seconds since the previous lap as ``step``."""
        now = time.perf_counter()
        self.seconds[step] = round(now - self._clock, 3)
        self._clock = now
