"""``curate()``: (generate) -> convert -> (prompt checks) -> embed -> (reward) -> select -> (label) -> write.

The prompt checks (``dedup=THRESHOLD``, ``decontaminate=[SOURCE[:column], ...]``) drop leaked prompts, then
duplicate prompts (:mod:`real_hub.dedup`), before anything is embedded or selected; for a prompt-only
source they run before generation, so no response is sampled for a prompt that goes.

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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from datasets import Dataset

from .convert import ConversionReport, detect_source, to_candidates, to_pairs, to_trl
from .dedup.curate import prompt_checks
from .dedup.report import DedupReport
from .dedup.settings import check_options as check_prompt_options
from .drsow.label import LabelReport, label_pairs
from .errors import ConfigError, FormatError, RowError, on_command_line, option
from .formats import PAIR_SOURCES
from .generate import GenerateResponses, GenerationReport, generate_candidates
from .hub.dataset_card import Provenance, Statistics
from .hub.sources import load_source, source_license
from .mapping import drop_skipped
from .options import (
    ENGINES,
    GENERATION_OPTIONS,
    CurateOptions,
    StepTimer,
    config_for,
    embed_arguments,
    generator_arguments,
    reward_arguments,
    selection_strategy,
    selector_arguments,
)
from .real.budget import BudgetReport, budget_filter
from .real.embed import EmbedResponses
from .real.select import STRATEGIES, PairSimilarity, SelectionReport, select_pairs
from .reporting import library_versions, summarize
from .schema import EMBEDDING_COLUMNS, NO_RESPONSES, PROMPT, RESPONSES

logger = logging.getLogger(__name__)


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
    dedup: DedupReport | None = None
    decontamination: DedupReport | None = None
    rows_out: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    config: str | None = None
    """The config the pairs were written as (the strategy, ``all`` without selection, or the name given)."""
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
            "dedup": self.dedup.to_dict() if self.dedup else None,
            "decontamination": self.decontamination.to_dict() if self.decontamination else None,
            "rows_out": self.rows_out,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "config": self.config,
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


def _check_free(config: str | None, output_dir: str | Path | None, overwrite: bool) -> None:
    """Refuse, before any model runs, a write that ``output_dir`` would refuse.

    The folder must be writable and its card readable; ``config`` (when known) must not be there already
    unless ``overwrite``.
    """
    if output_dir is None:
        return
    from .hub.commit import check_output
    from .hub.folder import card_entries, read_card

    folder = Path(output_dir)
    if not overwrite and config is not None and folder.is_dir():
        if config in [e["config_name"] for e in card_entries(read_card(folder))]:
            raise ConfigError(
                f"config {config!r} already exists in {folder}; pass {option('overwrite', True)} to replace "
                f"it, or {option('config_name', 'NAME', placeholder=True)} to write another"
            )
    check_output(folder, config, overwrite)


def _check(options: CurateOptions) -> None:
    if options.strategy is not None:  # an unknown name fails now, whatever the shape turns out to be
        selection_strategy(options, "candidates")
    check_prompt_options(options)
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
        everything = "leave it out for all" if on_command_line() else "limit=None for all"
        raise ConfigError(
            f"{option('limit', 'N', placeholder=True)}: N must be a positive number of rows ({everything}); "
            f"got {options.limit!r}"
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

    ``output_dir`` is checked first, before anything is loaded or run: it must be writable
    (:class:`~real_hub.errors.OutputError` otherwise) and its card readable
    (:class:`~real_hub.errors.CorruptFileError`). The config is written as one commit
    (:func:`~real_hub.save_curated`): an interrupted run leaves the folder as it was.
    """
    opts = CurateOptions(**options)
    _check(opts)
    _check_free(config_name, output_dir, overwrite)  # writable, a readable card: before anything runs
    timer = StepTimer()
    name = source_name or (
        source
        if isinstance(source, str)
        else ("<Dataset>" if isinstance(source, Dataset) else ", ".join(source))
    )
    if opts.engine == "ray":
        data, report, kind, strategy = _on_ray(source, name, opts, timer)
    else:
        raw = (
            source
            if isinstance(source, Dataset)
            else load_source(source, split=opts.split, config=opts.config, revision=opts.revision)
        )
        if opts.limit is not None:
            raw = raw.select(range(min(opts.limit, len(raw))))
        timer.lap("load")
        checks = opts.dedup is not None or opts.decontaminate is not None
        dedup = decontamination = None
        if checks and opts.generate is not None:  # prompts only: check them before generating for them
            raw, dedup, decontamination = prompt_checks(raw, opts)
            timer.lap("prompt checks")
        try:
            data, report, kind = _convert(raw, name, opts, timer)
        except RowError as err:  # name the data file and the row in it, as the Ray engine does
            raise (_locate(err, source) if opts.generate is None else err) from None
        strategy = selection_strategy(opts, report.shape)
        _check_free(config_name or config_for(strategy), output_dir, overwrite)  # before the models run
        if checks and opts.generate is None:
            data, dedup, decontamination = prompt_checks(data, opts)
            timer.lap("prompt checks")
        report.dedup, report.decontamination = dedup, decontamination
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
    config = report.config = config_name or config_for(strategy)
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


def _convert(
    raw: Dataset, name: str, opts: CurateOptions, timer: StepTimer
) -> tuple[Dataset, CurateReport, str]:
    """(Generate, then) convert the source into pairs or candidates; the report so far, and the schema."""
    generation = None
    dropped = 0
    if opts.generate is not None:
        generator = GenerateResponses(**generator_arguments(opts))
        raw, generation, dropped = generate_candidates(
            raw, generator, batch_size=opts.batch_size, num_proc=opts.num_proc
        )
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


def _embed_and_reward(data: Dataset, opts: CurateOptions, timer: StepTimer) -> Dataset:
    """Add the response embeddings and, with a strong and a weak model, the Dr.SoW rewards."""
    embed = EmbedResponses(**embed_arguments(opts))
    data = data.map(
        embed, batched=True, batch_size=opts.batch_size, num_proc=opts.num_proc, desc="Embedding responses"
    )
    timer.lap("embed")
    arguments = reward_arguments(opts)
    if arguments is not None:
        from .drsow.reward import DensityRatioReward

        reward = DensityRatioReward(**arguments)
        data = data.map(reward, batched=True, batch_size=opts.batch_size, desc="Dr.SoW rewards")
        timer.lap("reward")
    return data


def _select(data: Dataset, shape: str, strategy: str, opts: CurateOptions, report: CurateReport) -> Dataset:
    """REAL: a global budget over pairs, or pairs per prompt from candidates; then Dr.SoW labels."""
    if shape == "pairs":
        data = data.map(PairSimilarity(), batched=True, batch_size=opts.batch_size, desc="Pair similarity")
        return _budget_and_label(data, shape, strategy, opts, report)
    data, report.selection = select_pairs(data, strategy, **selector_arguments(opts))
    return _budget_and_label(data, shape, strategy, opts, report)


def _budget_and_label(
    data: Dataset, shape: str, strategy: str, opts: CurateOptions, report: CurateReport
) -> Dataset:
    """The steps over the whole dataset (both engines): the budget's global cut, Dr.SoW labels of pairs."""
    if opts.budget is not None:
        data, report.budget = budget_filter(
            data, opts.budget, "dissimilar" if strategy == "centroid" else strategy, seed=opts.seed
        )
    if shape == "pairs" and opts.label:
        data, report.labelling = label_pairs(data, min_margin=opts.min_margin)
    return data


def _on_ray(
    source: Any, name: str, opts: CurateOptions, timer: StepTimer
) -> tuple[Dataset, CurateReport, str, str]:
    """The per-row steps on Ray Data (:mod:`real_hub.scale.ray_engine`), the global ones here."""
    from .scale.ray_engine import run_on_ray

    run = run_on_ray(source, opts)
    timer.seconds.update(run.seconds)
    timer.lap("collect")
    strategy = selection_strategy(opts, run.shape)
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
    return _budget_and_label(data, run.shape, strategy, opts, report), report, run.kind, strategy


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
        limit=opts.limit,
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
        dedup=report.dedup.provenance() if report.dedup else None,
        decontamination=report.decontamination.provenance() if report.decontamination else None,
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
        dedup=report.dedup.statistics() if report.dedup else {},
        decontamination=report.decontamination.statistics() if report.decontamination else {},
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


__all__ = ["STRATEGIES", "CurateOptions", "CurateReport", "CurateResult", "curate"]
