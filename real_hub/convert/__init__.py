"""The two canonical data shapes, and the converters from public preference sources into them.

**pairs** (TRL's preference schema, one pair a row): ``prompt`` (a string, or a list of chat messages
``{"role", "content"}``), ``chosen`` and ``rejected`` (the response text only), and the provenance columns
``chosen_score``, ``rejected_score`` (float or None) and ``source_id`` (str or None).

**candidates** (one prompt a row): ``prompt``, ``responses`` (list of str), ``scores`` (list of float, one
per response, or None when unknown) and ``source_id``.

Sources: ``hh`` (HH-RLHF transcripts), ``trl`` (TRL preference pairs: standard, conversational or implicit
prompt), ``shp`` (SHP / SHP-2, grouped by post), ``ultrafeedback`` (openbmb/UltraFeedback) and ``candidates``
(plain ``prompt`` + ``responses`` [+ ``scores``]). Rows that cannot give a pair or a candidate set are
skipped with a named reason and counted in the :class:`ConversionReport`; values of the wrong type
(None, a number where text is expected, ragged lists) raise :class:`RowError` naming the row.

The per-row work is done by module-level batch functions (``hh_batch_to_pairs``, ``trl_batch_to_pairs``,
``ultrafeedback_batch_to_candidates``, ``shp_batch_to_candidates``, ``candidates_batch_validate``,
``pairs_batch_to_trl``) usable with ``ds.map(fn, batched=True, with_indices=True, fn_kwargs=...)``.
They return the new shape plus a ``_skip`` column (the reason, None when kept) and, where items inside
a row can be dropped, a ``_notes`` column; :func:`to_pairs` and :func:`to_candidates` count and remove them.
Extra input columns are not carried over (the output is exactly the canonical shape). Messages keep
only ``role`` and ``content``.
"""

from __future__ import annotations

from ..schema import CANDIDATE_COLUMNS, PAIR_COLUMNS, candidate_features, is_messages_feature, pair_features
from .dataset import to_candidates, to_pairs, to_trl, trl_format
from .detect import SOURCES, detect_source
from .hh import hh_batch_to_pairs, parse_hh
from .plain import candidates_batch_validate
from .report import ConversionReport
from .shp import shp_batch_to_candidates
from .trl import pairs_batch_to_trl, trl_batch_to_pairs
from .ultrafeedback import ultrafeedback_batch_to_candidates, ultrafeedback_score

__all__ = [
    "CANDIDATE_COLUMNS",
    "PAIR_COLUMNS",
    "SOURCES",
    "ConversionReport",
    "candidate_features",
    "candidates_batch_validate",
    "detect_source",
    "hh_batch_to_pairs",
    "is_messages_feature",
    "pair_features",
    "pairs_batch_to_trl",
    "parse_hh",
    "shp_batch_to_candidates",
    "to_candidates",
    "to_pairs",
    "to_trl",
    "trl_format",
    "trl_batch_to_pairs",
    "ultrafeedback_batch_to_candidates",
    "ultrafeedback_score",
]
