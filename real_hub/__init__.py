"""real-hub: cheaper, cleaner preference data for LLM alignment (REAL pair selection, Dr.SoW rewards).

Public names resolve on first use (PEP 562), so ``import real_hub`` and ``real-hub --help`` load
neither torch nor transformers; type checkers and IDEs read the imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .convert import ConversionReport, detect_source, to_candidates, to_pairs, to_trl
    from .dedup.decontaminate import decontaminate
    from .dedup.dedup import deduplicate
    from .dedup.report import DedupReport, DuplicateGroup, Match
    from .demo import load_demo, run_demo
    from .drsow.evaluate import AccuracyReport, BestOfNReport, best_of_n, reward_accuracy
    from .drsow.label import LabelReport, OrientByReward, PairsFromRewards, label_pairs
    from .drsow.reward import DensityRatioReward, RewardStats
    from .drsow.routing import DOMAIN_INSTRUCTIONS, EmbeddingRouter, KeywordRouter
    from .errors import (
        ColumnError,
        ConfigError,
        CorruptFileError,
        FormatError,
        HubError,
        ModelNotFoundError,
        OutputError,
        RealHubError,
        RemoteCodeError,
        RowError,
    )
    from .generate import GenerateResponses, GenerationReport, generation_report
    from .hub.curated import CuratedSet, load_curated, push_curated, save_curated
    from .hub.dataset_card import Provenance, Statistics
    from .hub.repair import repair_card
    from .logprobs import SequenceScores, score_sequences
    from .options import CurateOptions
    from .pipeline import CurateReport, CurateResult, curate
    from .real.agreement import AgreementCurve, agreement_by_similarity
    from .real.budget import BudgetReport, budget_filter
    from .real.budget_curve import BudgetCurve, budget_curve
    from .real.embed import EmbedResponses, Encoder
    from .real.select import PairSimilarity, SelectionReport, SelectPairs, select_pairs
    from .space.annotation import AnnotationReport, AnnotationStore, load_annotations
    from .train.dpo import HubOptions, ModelSource, TrainResult, train_dpo
    from .train.reference import ReferenceSpec, add_reference_logps

#: Where each public name lives (module relative to this package).
_LAZY: dict[str, str] = {
    "ConversionReport": ".convert",
    "detect_source": ".convert",
    "to_candidates": ".convert",
    "to_pairs": ".convert",
    "to_trl": ".convert",
    "decontaminate": ".dedup.decontaminate",
    "deduplicate": ".dedup.dedup",
    "DedupReport": ".dedup.report",
    "DuplicateGroup": ".dedup.report",
    "Match": ".dedup.report",
    "load_demo": ".demo",
    "run_demo": ".demo",
    "AccuracyReport": ".drsow.evaluate",
    "BestOfNReport": ".drsow.evaluate",
    "best_of_n": ".drsow.evaluate",
    "reward_accuracy": ".drsow.evaluate",
    "LabelReport": ".drsow.label",
    "OrientByReward": ".drsow.label",
    "PairsFromRewards": ".drsow.label",
    "label_pairs": ".drsow.label",
    "DensityRatioReward": ".drsow.reward",
    "RewardStats": ".drsow.reward",
    "DOMAIN_INSTRUCTIONS": ".drsow.routing",
    "EmbeddingRouter": ".drsow.routing",
    "KeywordRouter": ".drsow.routing",
    "ColumnError": ".errors",
    "ConfigError": ".errors",
    "CorruptFileError": ".errors",
    "FormatError": ".errors",
    "HubError": ".errors",
    "ModelNotFoundError": ".errors",
    "OutputError": ".errors",
    "RealHubError": ".errors",
    "RemoteCodeError": ".errors",
    "RowError": ".errors",
    "GenerateResponses": ".generate",
    "GenerationReport": ".generate",
    "generation_report": ".generate",
    "CuratedSet": ".hub.curated",
    "load_curated": ".hub.curated",
    "push_curated": ".hub.curated",
    "save_curated": ".hub.curated",
    "Provenance": ".hub.dataset_card",
    "Statistics": ".hub.dataset_card",
    "repair_card": ".hub.repair",
    "SequenceScores": ".logprobs",
    "score_sequences": ".logprobs",
    "CurateOptions": ".options",
    "CurateReport": ".pipeline",
    "CurateResult": ".pipeline",
    "curate": ".pipeline",
    "AgreementCurve": ".real.agreement",
    "agreement_by_similarity": ".real.agreement",
    "BudgetReport": ".real.budget",
    "BudgetCurve": ".real.budget_curve",
    "budget_curve": ".real.budget_curve",
    "budget_filter": ".real.budget",
    "EmbedResponses": ".real.embed",
    "Encoder": ".real.embed",
    "PairSimilarity": ".real.select",
    "SelectionReport": ".real.select",
    "SelectPairs": ".real.select",
    "select_pairs": ".real.select",
    "AnnotationReport": ".space.annotation",
    "AnnotationStore": ".space.annotation",
    "load_annotations": ".space.annotation",
    "HubOptions": ".train.dpo",
    "ModelSource": ".train.dpo",
    "TrainResult": ".train.dpo",
    "train_dpo": ".train.dpo",
    "ReferenceSpec": ".train.reference",
    "add_reference_logps": ".train.reference",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AccuracyReport",
    "AgreementCurve",
    "AnnotationReport",
    "AnnotationStore",
    "BestOfNReport",
    "BudgetCurve",
    "BudgetReport",
    "ColumnError",
    "ConfigError",
    "ConversionReport",
    "CurateOptions",
    "CurateReport",
    "CurateResult",
    "CorruptFileError",
    "CuratedSet",
    "DedupReport",
    "DOMAIN_INSTRUCTIONS",
    "DensityRatioReward",
    "DuplicateGroup",
    "EmbedResponses",
    "EmbeddingRouter",
    "Encoder",
    "FormatError",
    "GenerateResponses",
    "GenerationReport",
    "HubError",
    "HubOptions",
    "KeywordRouter",
    "LabelReport",
    "Match",
    "ModelNotFoundError",
    "ModelSource",
    "OrientByReward",
    "OutputError",
    "PairSimilarity",
    "PairsFromRewards",
    "Provenance",
    "RealHubError",
    "ReferenceSpec",
    "RemoteCodeError",
    "RewardStats",
    "RowError",
    "SelectPairs",
    "SelectionReport",
    "SequenceScores",
    "Statistics",
    "TrainResult",
    "add_reference_logps",
    "agreement_by_similarity",
    "best_of_n",
    "budget_curve",
    "budget_filter",
    "curate",
    "decontaminate",
    "deduplicate",
    "detect_source",
    "generation_report",
    "label_pairs",
    "load_annotations",
    "load_curated",
    "load_demo",
    "push_curated",
    "repair_card",
    "reward_accuracy",
    "run_demo",
    "save_curated",
    "score_sequences",
    "select_pairs",
    "to_candidates",
    "to_pairs",
    "to_trl",
    "train_dpo",
    "__version__",
]
