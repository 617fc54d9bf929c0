"""The names of the source schemas real-hub converts, by the shape each converts to.

No imports: the command line's ``--help`` reads them without loading ``datasets``.
"""

from __future__ import annotations

#: Every source schema (``real-hub curate --format``, ``to_pairs(..., source=)``).
SOURCES = ("hh", "trl", "shp", "ultrafeedback", "candidates")
#: Schemas whose rows are pairs (a chosen and a rejected response).
PAIR_SOURCES = ("hh", "trl")
#: Schemas whose rows (or groups of rows) are a prompt's candidate responses.
CANDIDATE_SOURCES = ("shp", "ultrafeedback", "candidates")
