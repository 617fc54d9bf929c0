"""``curate()``: (generate) -> convert -> embed -> (reward) -> select -> (label) -> save and/or push.

Prompt-only sources (a ``prompt`` column, no responses) first get ``n`` sampled responses per prompt from
the ``generate`` model (:class:`~real_hub.GenerateResponses`); empty samples are dropped from a row
(counted in the conversion's notes), rows left without a response are skipped (``no_responses``), and the
generator and its sampling parameters go into the card's provenance. With ``strong``/``weak`` models the
pairs are then oriented by Dr.SoW reward, else they are left unoriented for annotation.

Pairwise sources (HH-RLHF, TRL pairs) are embedded, scored by pair similarity and cut to a budget over
the whole dataset; candidate sources (SHP, UltraFeedback, plain ``responses``) are embedded and pairs
are selected per prompt by a strategy. With ``strong``/``weak`` models, Dr.SoW rewards are added and
``label=True`` orients the pairs by reward (abstaining below ``min_margin``). Every step's report,
skipped rows by reason included, goes into the result and the dataset card.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from datasets import Dataset

from .convert import ConversionReport, detect_source, to_candidates, to_pairs, to_trl
from .drsow.label import LabelReport, label_pairs
from .errors import ColumnError, ConfigError
from .generate import GenerateResponses, GenerationReport, generation_report
from .hub.dataset_card import Provenance, Statistics
from .hub.sources import load_source, source_license
from .models import DEFAULT_EMBEDDER
from .real.budget import BudgetReport, budget_filter
from .real.embed import EmbedResponses
from .real.select import STRATEGIES, PairSimilarity, SelectionReport, resolve_strategy
from .real.select import select_pairs as _select_pairs
from .reporting import library_versions, summarize
from .schema import NO_RESPONSES, PROMPT, RESPONSES

logger = logging.getLogger(__name__)

PAIR_SOURCES = ("hh", "trl")
EMBEDDING_COLUMNS = ("chosen_embedding", "rejected_embedding", "responses_embedding")


@dataclass
class CurateOptions:
    """Everything that shapes a curated set (recorded in its card)."""

    source_format: str = "auto"
    split: str = "train"
    config: str | None = None
    revision: str | None = None
    strategy: str = "dissimilar"
    budget: float | None = None
    pairs_per_prompt: int = 1
    seed: int = 0
    embedder: str = DEFAULT_EMBEDDER
    embed_backend: str = "auto"
    strong: str | None = None
    weak: str | None = None
    normalize: str = "sum"
    domain_routing: bool = True
    label: bool = False
    min_margin: float = 0.0
    limit: int | None = None
    batch_size: int = 256
    num_proc: int | None = None
    keep_embeddings: bool = False
    generate: str | None = field(
        default=None,
        metadata={
            "help": "Prompt-only source: sample candidate responses with this causal LM (Hub id, folder or "
            ".gguf), then select pairs; with --strong/--weak the pairs are labelled by Dr.SoW reward."
        },
    )
    n: int = field(default=4, metadata={"help": "Responses generated per prompt (with --generate)."})
    max_new_tokens: int = field(default=256, metadata={"help": "Most new tokens per generated response."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature (0: greedy)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling: probability mass kept."})
    generate_backend: str = field(
        default="transformers",
        metadata={"help": "transformers | vllm (GPU; pip install 'real-hub[vllm]')."},
    )
    generate_batch_size: int = field(
        default=8, metadata={"help": "Prompts per generation forward pass (each expands to n sequences)."}
    )
    reference: str | None = field(
        default=None,
        metadata={"help": "Add ref_chosen_logps/ref_rejected_logps of this model (the DPO policy to train)."},
    )
    reference_revision: str | None = field(default=None, metadata={"help": "Hub revision of the reference."})
    reference_dtype: str = field(default="float32", metadata={"help": "Precision of the reference model."})
    reference_max_length: int | None = field(
        default=1024, metadata={"help": "TRL max_length the reference log-probs are for."}
    )


#: The options that shape generation (recorded in the card's provenance with the generator).
GENERATION_OPTIONS = ("n", "max_new_tokens", "temperature", "top_p", "generate_backend")


@dataclass
class CurateReport:
    """What each step did, and where the result went."""

    source: str
    shape: str
    conversion: ConversionReport
    generation: GenerationReport | None = None
    selection: SelectionReport | None = None
    budget: BudgetReport | None = None
    labelling: LabelReport | None = None
    rows_out: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    output_dir: str | None = None
    pushed_to: str | None = None

    @property
    def skipped(self) -> dict[str, int]:
        """Every skipped row or pair by reason, over all steps."""
        out: dict[str, int] = {}
        for part in (self.conversion, self.selection, self.labelling):
            for reason, n in (part.skipped if part is not None else {}).items():
                out[reason] = out.get(reason, 0) + n
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "source": self.source,
            "shape": self.shape,
            "conversion": self.conversion.to_dict(),
            "generation": self.generation.to_dict() if self.generation else None,
            "selection": self.selection.to_dict() if self.selection else None,
            "budget": self.budget.to_dict() if self.budget else None,
            "labelling": self.labelling.to_dict() if self.labelling else None,
            "rows_out": self.rows_out,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "output_dir": self.output_dir,
            "pushed_to": self.pushed_to,
        }


@dataclass
class CurateResult:
    """The curated pairs, their report, and the card's provenance and statistics."""

    dataset: Dataset
    report: CurateReport
    provenance: Provenance
    statistics: Statistics


def _check(options: CurateOptions) -> None:
    resolve_strategy(options.strategy)
    if options.budget is not None and not 0 < options.budget <= 1:
        raise ConfigError(f"budget must be a fraction in (0, 1], got {options.budget}")
    if (options.strong is None) != (options.weak is None):
        raise ConfigError("Dr.SoW rewards need both a strong and a weak model (or neither)")
    if options.label and options.strong is None:
        raise ConfigError("label=True orients pairs by Dr.SoW reward: give strong and weak models")
    if options.limit is not None and (
        isinstance(options.limit, bool) or not isinstance(options.limit, int) or options.limit < 1
    ):
        raise ConfigError(
            f"limit (--limit) must be a positive number of rows, or None for all; got {options.limit!r}"
        )
    if options.pairs_per_prompt < 1:
        raise ConfigError(f"pairs_per_prompt must be at least 1, got {options.pairs_per_prompt}")
    if options.generate is None:
        names = (*GENERATION_OPTIONS, "generate_batch_size")
        changed = [
            f.name for f in fields(CurateOptions) if f.name in names and getattr(options, f.name) != f.default
        ]
        if changed:
            raise ConfigError(f"{', '.join(changed)} only apply with generate=MODEL (--generate MODEL)")
    elif options.n < 2:
        raise ConfigError(f"n must be at least 2 to make pairs from a prompt's responses, got {options.n}")


def curate(
    source: str | list[str] | Dataset,
    *,
    output_dir: str | Path | None = None,
    push_to: str | None = None,
    config_name: str | None = None,
    private: bool = False,
    overwrite: bool = False,
    token: str | None = None,
    **options: Any,
) -> CurateResult:
    """Curate ``source`` (data files, a Hub-layout folder, a Hub id, or a ``Dataset``) into pairs.

    The pairs are in TRL's preference format (standard, or conversational when the prompts are
    messages), with the provenance and statistics columns beside them. Options are the fields of
    :class:`CurateOptions`. The result is saved to ``output_dir`` and/or pushed to ``push_to`` as config
    ``config_name`` (default: the strategy).
    """
    opts = CurateOptions(**options)
    _check(opts)
    strategy = resolve_strategy(opts.strategy)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = round(now - clock, 3)
        clock = now

    name = (
        source
        if isinstance(source, str)
        else ("<Dataset>" if isinstance(source, Dataset) else ", ".join(source))
    )
    raw = (
        source
        if isinstance(source, Dataset)
        else load_source(source, split=opts.split, config=opts.config, revision=opts.revision)
    )
    if opts.limit is not None:
        raw = raw.select(range(min(opts.limit, len(raw))))
    lap("load")
    generation = None
    if opts.generate is not None:
        raw, generation, dropped = _generate(raw, opts)
        lap("generate")
        kind = "candidates"
    else:
        _refuse_prompt_only(raw.column_names)
        kind = detect_source(raw) if opts.source_format == "auto" else opts.source_format
    shape = "pairs" if kind in PAIR_SOURCES else "candidates"
    data, conversion = (to_pairs if shape == "pairs" else to_candidates)(raw, kind)
    if generation is not None:
        conversion.source = "generated"
        conversion.rows_in = generation.rows
        if generation.empty_samples:
            conversion.notes["empty_response"] = generation.empty_samples
        if dropped:
            conversion.skipped[NO_RESPONSES] = dropped
    logger.info(
        "Converted %d %s rows into %d %s (skipped %s)",
        conversion.rows_in,
        kind,
        conversion.rows_out,
        shape,
        conversion.skipped or "none",
    )
    lap("convert")
    report = CurateReport(source=name, shape=shape, conversion=conversion, generation=generation)

    embed = EmbedResponses(opts.embedder, backend=opts.embed_backend)  # type: ignore[arg-type]
    data = data.map(
        embed, batched=True, batch_size=opts.batch_size, num_proc=opts.num_proc, desc="Embedding responses"
    )
    lap("embed")
    reward = None
    if opts.strong is not None:
        from .drsow.reward import DensityRatioReward

        reward = DensityRatioReward(
            opts.strong,
            opts.weak or "",
            normalize=opts.normalize,  # type: ignore[arg-type]
            domain_routing=opts.domain_routing,
        )
        data = data.map(reward, batched=True, batch_size=opts.batch_size, desc="Dr.SoW rewards")
        lap("reward")

    if shape == "pairs":
        data = data.map(PairSimilarity(), batched=True, batch_size=opts.batch_size, desc="Pair similarity")
        if opts.budget is not None:
            if strategy == "centroid":
                raise ConfigError(
                    "the centroid strategy needs candidates; pairwise data takes dissimilar, "
                    "similar or random"
                )
            data, report.budget = budget_filter(data, opts.budget, strategy, seed=opts.seed)
        if opts.label:
            data, report.labelling = label_pairs(data, min_margin=opts.min_margin)
    else:
        label = opts.label or (opts.generate is not None and opts.strong is not None)
        scores_column = "rewards" if label else "scores"
        data, report.selection = _select_pairs(
            data,
            strategy,
            pairs_per_prompt=opts.pairs_per_prompt,
            seed=opts.seed,
            scores_column=scores_column,
        )
        if opts.budget is not None:
            data, report.budget = budget_filter(
                data, opts.budget, "dissimilar" if strategy == "centroid" else strategy, seed=opts.seed
            )
    lap("select")
    if not opts.keep_embeddings:
        data = data.remove_columns([c for c in EMBEDDING_COLUMNS if c in data.column_names])
    data = to_trl(data)  # TRL's preference format, as saved and pushed: what the trainers read
    reference = None
    if opts.reference is not None:
        from .train.reference import add_reference_logps

        data, spec = add_reference_logps(
            data,
            opts.reference,
            revision=opts.reference_revision,
            dtype=opts.reference_dtype,
            max_length=opts.reference_max_length,
            batch_size=min(opts.batch_size, 64),
        )
        reference = spec.to_dict()
        lap("reference")
    report.rows_out = len(data)

    provenance = Provenance(
        source=name,
        source_revision=opts.revision,
        converter=kind,
        embedder=opts.embedder,
        reward_models={"strong": opts.strong, "weak": opts.weak or ""} if opts.strong else None,
        normalize=opts.normalize if opts.strong else None,
        generator=(
            {"model": opts.generate, **{k: getattr(opts, k) for k in GENERATION_OPTIONS}, "seed": opts.seed}
            if opts.generate is not None
            else None
        ),
        strategy=strategy,
        pairs_per_prompt=opts.pairs_per_prompt if shape == "candidates" else None,
        budget=opts.budget,
        seed=opts.seed,
        license=None if isinstance(source, Dataset) else source_license(source),
        versions=library_versions(),
        reference=reference,
    )
    statistics = Statistics(
        rows_in=conversion.rows_in,
        converted=conversion.rows_out,
        rows_out={"train": len(data)},
        skipped=report.skipped,
        annotation_saved=round(report.budget.annotation_saved, 6) if report.budget else None,
        similarity=summarize(data["similarity"]) if "similarity" in data.column_names else {},
        margin=summarize(data["margin"]) if "margin" in data.column_names else {},
        generation=generation.to_dict() if generation is not None else {},
    )
    config = config_name or strategy
    if output_dir is not None:
        from .hub.curated import save_curated

        save_curated(
            data, output_dir, config, provenance=provenance, statistics=statistics, overwrite=overwrite
        )
        report.output_dir = str(output_dir)
    if push_to is not None:
        from .hub import curated as hub

        push = hub.push_curated
        push(
            data,
            push_to,
            config,
            provenance=provenance,
            statistics=statistics,
            private=private,
            overwrite=overwrite,
            token=token,
        )
        report.pushed_to = push_to
    lap("write")
    report.seconds = seconds
    return CurateResult(data, report, provenance, statistics)


def _refuse_prompt_only(columns: list[str]) -> None:
    """A source with prompts and no responses needs a generator: say so rather than 'unknown schema'."""
    known = {RESPONSES, "chosen", "rejected", "completions", "human_ref_A"}
    if PROMPT in columns and not known & set(columns):
        raise ConfigError(
            "the source has prompts but no responses: pass generate=MODEL (real-hub curate --generate MODEL) "
            "to sample candidate responses for each prompt"
        )


def _generate(raw: Dataset, opts: CurateOptions) -> tuple[Dataset, GenerationReport, int]:
    """Candidates sampled from ``opts.generate``; the report, and how many rows had no non-empty sample."""
    if PROMPT not in raw.column_names:
        hint = "generate=MODEL continues each row's prompt"
        raise ColumnError.missing([PROMPT], raw.column_names, hint=hint)
    generator = GenerateResponses(
        opts.generate or "",
        n=opts.n,
        max_new_tokens=opts.max_new_tokens,
        temperature=opts.temperature,
        top_p=opts.top_p,
        seed=opts.seed,
        backend=opts.generate_backend,  # type: ignore[arg-type]
        batch_size=opts.generate_batch_size,
    )
    prompts = raw.select_columns([PROMPT])
    generated = prompts.map(
        generator,
        batched=True,
        with_indices=True,
        batch_size=opts.batch_size,
        num_proc=opts.num_proc,
        features=generator.output_features(prompts.features),
        desc="Generating responses",
    )
    report = generation_report(generated)
    logger.info("Generated %d responses for %d prompts: %s", report.samples, report.rows, report.to_dict())
    kept = generated.map(
        _non_empty, batched=True, input_columns=[RESPONSES], desc="Dropping empty samples"
    ).filter(lambda r: [bool(x) for x in r], batched=True, input_columns=[RESPONSES])
    return kept.select_columns([PROMPT, RESPONSES]), report, len(generated) - len(kept)


def _non_empty(responses: list[list[str]]) -> dict[str, list[list[str]]]:
    return {RESPONSES: [[r for r in row if r] for row in responses]}


def options_help() -> dict[str, Any]:
    """The default options, for ``--help`` texts and docs."""
    return asdict(CurateOptions())


__all__ = ["STRATEGIES", "CurateOptions", "CurateReport", "CurateResult", "curate"]
