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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from datasets import Dataset

from .convert import SOURCES, ConversionReport, detect_source, to_candidates, to_pairs, to_trl
from .convert.detect import PAIR_SOURCES
from .drsow.label import LabelReport, label_pairs
from .errors import ColumnError, ConfigError, FormatError, RowError
from .generate import GenerateResponses, GenerationReport, generation_report
from .hub.dataset_card import Provenance, Statistics
from .hub.sources import load_source, source_license
from .models import DEFAULT_EMBEDDER
from .processor import drop_skipped
from .real.budget import BudgetReport, budget_filter
from .real.embed import EmbedResponses
from .real.select import STRATEGIES, PairSimilarity, SelectionReport, resolve_strategy, select_pairs
from .reporting import library_versions, summarize
from .schema import EMBEDDING_COLUMNS, NO_RESPONSES, PROMPT, RESPONSES

logger = logging.getLogger(__name__)


def _option(default: Any, help: str, **cli: Any) -> Any:
    """A :class:`CurateOptions` field: its default, its help text and how the ``curate`` command shows it."""
    return field(default=default, metadata={"help": help, **cli})


ENGINES = ("datasets", "ray")


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
    strategy: str = _option(
        "dissimilar",
        "dissimilar | similar | random | centroid (or REAL's easy | hard).",
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
        1024, "TRL max_length the reference log-probs are for.", group="reference log-probs"
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
    if options.engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {options.engine!r}")
    if options.engine == "ray":
        from .scale.ray_engine import require_ray

        require_ray()
        if options.generate is not None:
            raise ConfigError("generate=MODEL runs with the default engine only (engine='datasets') for now")
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
    if options.budget_curve is not None and not Path(options.budget_curve).is_file():
        raise ConfigError(
            f"budget_curve (--budget-curve): expected the budget_curve.json that `real-hub budget-curve` "
            f"writes, found no file at {options.budget_curve!r}"
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
    source_name: str | None = None,
    **options: Any,
) -> CurateResult:
    """Curate ``source`` (data files, a Hub-layout folder, a Hub id, or a ``Dataset``) into pairs.

    The pairs are in TRL's preference format (standard, or conversational when the prompts are
    messages), with the provenance and statistics columns beside them. Options are the fields of
    :class:`CurateOptions`. The result is saved to ``output_dir`` and/or pushed to ``push_to`` as config
    ``config_name`` (default: the strategy). ``source_name`` names the source in the card (default:
    ``source`` itself, or ``"<Dataset>"`` for a loaded ``Dataset``).
    """
    opts = CurateOptions(**options)
    _check(opts)
    strategy = resolve_strategy(opts.strategy)
    timer = _Timer()
    name = source_name or (
        source
        if isinstance(source, str)
        else ("<Dataset>" if isinstance(source, Dataset) else ", ".join(source))
    )
    if opts.engine == "ray":
        data, report, kind = _on_ray(source, name, strategy, opts, timer)
    else:
        raw = (
            source
            if isinstance(source, Dataset)
            else load_source(source, split=opts.split, config=opts.config, revision=opts.revision)
        )
        if opts.limit is not None:
            raw = raw.select(range(min(opts.limit, len(raw))))
        timer.lap("load")
        try:
            data, report, kind = _convert(raw, name, opts, timer)
        except RowError as err:  # name the data file and the row in it, as the Ray engine does
            raise (_locate(err, source) if opts.generate is None else err) from None
        data = _embed_and_reward(data, opts, timer)
        data = _select(data, report.shape, strategy, opts, report)
    timer.lap("select")
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
        timer.lap("reference")
    report.rows_out = len(data)
    licence = None if isinstance(source, Dataset) else source_license(source)
    provenance, statistics = _card_fields(data, name, kind, strategy, opts, report, licence, reference)
    config = config_name or strategy
    if output_dir is not None:
        from .hub.curated import save_curated

        save_curated(
            data, output_dir, config, provenance=provenance, statistics=statistics, overwrite=overwrite
        )
        report.output_dir = str(output_dir)
    if push_to is not None:
        from .hub.curated import push_curated

        push_curated(
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
    timer.lap("write")
    report.seconds = timer.seconds
    return CurateResult(data, report, provenance, statistics)


class _Timer:
    """Seconds spent in each step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(now - self._clock, 3)
        self._clock = now


def _convert(
    raw: Dataset, name: str, opts: CurateOptions, timer: _Timer
) -> tuple[Dataset, CurateReport, str]:
    """(Generate, then) convert the source into pairs or candidates; the report so far, and the schema."""
    generation = None
    dropped = 0
    if opts.generate is not None:
        raw, generation, dropped = _generate(raw, opts)
        timer.lap("generate")
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
    timer.lap("convert")
    return data, CurateReport(source=name, shape=shape, conversion=conversion, generation=generation), kind


def _embed_and_reward(data: Dataset, opts: CurateOptions, timer: _Timer) -> Dataset:
    """Add the response embeddings and, with a strong and a weak model, the Dr.SoW rewards."""
    embed = EmbedResponses(opts.embedder, backend=opts.embed_backend)  # type: ignore[arg-type]
    data = data.map(
        embed, batched=True, batch_size=opts.batch_size, num_proc=opts.num_proc, desc="Embedding responses"
    )
    timer.lap("embed")
    if opts.strong is not None:
        from .drsow.reward import DensityRatioReward

        reward = DensityRatioReward(
            opts.strong,
            opts.weak or "",
            normalize=opts.normalize,  # type: ignore[arg-type]
            domain_routing=opts.domain_routing,
        )
        data = data.map(reward, batched=True, batch_size=opts.batch_size, desc="Dr.SoW rewards")
        timer.lap("reward")
    return data


def _select(data: Dataset, shape: str, strategy: str, opts: CurateOptions, report: CurateReport) -> Dataset:
    """REAL: a global budget over pairs, or pairs per prompt from candidates; then Dr.SoW labels."""
    if shape == "pairs":
        data = data.map(PairSimilarity(), batched=True, batch_size=opts.batch_size, desc="Pair similarity")
        return _budget_and_label(data, shape, strategy, opts, report)
    label = opts.label or (opts.generate is not None and opts.strong is not None)
    data, report.selection = select_pairs(
        data,
        strategy,
        pairs_per_prompt=opts.pairs_per_prompt,
        seed=opts.seed,
        scores_column="rewards" if label else "scores",
    )
    return _budget_and_label(data, shape, strategy, opts, report)


def _budget_and_label(
    data: Dataset, shape: str, strategy: str, opts: CurateOptions, report: CurateReport
) -> Dataset:
    """The steps over the whole dataset (both engines): the budget's global cut, Dr.SoW labels of pairs."""
    if shape == "pairs":
        if opts.budget is not None:
            if strategy == "centroid":
                raise ConfigError(
                    "the centroid strategy needs candidates; pairwise data takes dissimilar, "
                    "similar or random"
                )
            data, report.budget = budget_filter(data, opts.budget, strategy, seed=opts.seed)
        if opts.label:
            data, report.labelling = label_pairs(data, min_margin=opts.min_margin)
        return data
    if opts.budget is not None:
        data, report.budget = budget_filter(
            data, opts.budget, "dissimilar" if strategy == "centroid" else strategy, seed=opts.seed
        )
    return data


def _on_ray(
    source: Any, name: str, strategy: str, opts: CurateOptions, timer: _Timer
) -> tuple[Dataset, CurateReport, str]:
    """The per-row steps on Ray Data (:mod:`real_hub.scale.ray_engine`), the global ones here."""
    from .scale.ray_engine import run_on_ray

    run = run_on_ray(source, opts)
    timer.seconds.update(run.seconds)
    timer.lap("collect")
    report = CurateReport(source=name, shape=run.shape, conversion=run.conversion)
    assert run.rows is not None
    data = run.rows
    if run.shape == "candidates":  # SelectPairs ran on Ray with keep_skipped: count and drop here
        data, skipped = drop_skipped(data)
        report.selection = SelectionReport(
            strategy=strategy,
            prompts_in=run.conversion.rows_out,
            pairs_out=len(data),
            skipped=skipped,
            pairs_per_prompt=opts.pairs_per_prompt,
            seed=opts.seed,
        )
    return _budget_and_label(data, run.shape, strategy, opts, report), report, run.kind


def _locate(err: RowError, source: str | list[str] | Dataset) -> RowError:
    """``err`` naming the data file of its row (and the row in that file), as the Ray engine names it."""
    if isinstance(source, Dataset):
        return err
    from .scale.files import count_rows, locate_row, resolve_files

    try:
        files, data_format = resolve_files(source)
    except FormatError:  # a folder or a Hub id: rows are numbered over the whole split
        return err
    if len(files) == 1:
        return locate_row(err, files, [err.row + 1]) if isinstance(err.row, int) else err
    return locate_row(err, files, [count_rows(f, data_format) for f in files])


def _card_fields(
    data: Dataset,
    name: str,
    kind: str,
    strategy: str,
    opts: CurateOptions,
    report: CurateReport,
    licence: str | None,
    reference: dict[str, Any] | None,
) -> tuple[Provenance, Statistics]:
    """The card's provenance and statistics of a curated set."""
    generation = report.generation
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
        pairs_per_prompt=opts.pairs_per_prompt if report.shape == "candidates" else None,
        budget=opts.budget,
        seed=opts.seed,
        license=licence,
        reference=reference,
        versions=library_versions(),
    )
    statistics = Statistics(
        rows_in=report.conversion.rows_in,
        converted=report.conversion.rows_out,
        rows_out={"train": len(data)},
        skipped=report.skipped,
        annotation_saved=round(report.budget.annotation_saved, 6) if report.budget else None,
        similarity=summarize(data["similarity"]) if "similarity" in data.column_names else {},
        margin=summarize(data["margin"]) if "margin" in data.column_names else {},
        generation=generation.to_dict() if generation is not None else {},
        budget_curve=_budget_curve_summary(opts, strategy),
    )
    return provenance, statistics


def _budget_curve_summary(opts: CurateOptions, strategy: str) -> dict[str, str]:
    """The card's lines from ``opts.budget_curve`` (see :meth:`~real_hub.BudgetCurve.card_summary`).

    The curated strategy (else the curve's first) at the budget (at every measured budget when the curve
    did not measure it), all pairs, and the annotation saved.
    """
    if opts.budget_curve is None:
        return {}
    from .real.budget_curve import BudgetCurve

    curve = BudgetCurve.load(opts.budget_curve)
    name = strategy if strategy in curve.strategies else curve.strategies[0]
    measured = opts.budget is not None and any(abs(b - opts.budget) < 1e-9 for b in curve.budgets)
    return curve.card_summary(name, opts.budget if measured else None)


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


__all__ = ["STRATEGIES", "CurateOptions", "CurateReport", "CurateResult", "curate"]
