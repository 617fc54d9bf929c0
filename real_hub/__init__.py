"""real-hub: cheaper, cleaner preference data for LLM alignment (REAL pair selection, Dr.SoW rewards)."""

from .convert import ConversionReport, detect_source, to_candidates, to_pairs, to_trl
from .demo import load_demo, run_demo
from .drsow.evaluate import AccuracyReport, BestOfNReport, best_of_n, reward_accuracy
from .drsow.label import LabelReport, OrientByReward, PairsFromRewards, label_pairs
from .drsow.reward import DensityRatioReward, RewardStats
from .drsow.routing import DOMAIN_INSTRUCTIONS, EmbeddingRouter, KeywordRouter
from .errors import (
    ColumnError,
    ConfigError,
    FormatError,
    HubError,
    ModelNotFoundError,
    RealHubError,
    RemoteCodeError,
    RowError,
)
from .generate import GenerateResponses, GenerationReport, generation_report
from .hub.curated import CuratedSet, load_curated, push_curated, save_curated
from .hub.dataset_card import Provenance, Statistics
from .logprobs import SequenceScores, score_sequences
from .pipeline import CurateOptions, CurateReport, CurateResult, curate
from .real.agreement import AgreementCurve, agreement_by_similarity
from .real.budget import BudgetReport, budget_filter
from .real.budget_curve import BudgetCurve, budget_curve
from .real.embed import EmbedResponses, Encoder
from .real.select import PairSimilarity, SelectionReport, SelectPairs, select_pairs
from .space.annotation import AnnotationReport, AnnotationStore, LabelStore, load_annotations
from .train.dpo import TrainResult, train_dpo
from .train.reference import ReferenceSpec, add_reference_logps
from .version import __version__

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
    "CuratedSet",
    "DOMAIN_INSTRUCTIONS",
    "DensityRatioReward",
    "EmbedResponses",
    "EmbeddingRouter",
    "Encoder",
    "FormatError",
    "GenerateResponses",
    "GenerationReport",
    "HubError",
    "KeywordRouter",
    "LabelReport",
    "LabelStore",
    "ModelNotFoundError",
    "OrientByReward",
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
    "detect_source",
    "generation_report",
    "label_pairs",
    "load_annotations",
    "load_curated",
    "load_demo",
    "push_curated",
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
