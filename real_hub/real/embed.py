"""REAL's embeddings: the ``EmbedResponses`` processor.

Responses are embedded on their own, without the prompt (REAL embeds the response only), and every
vector is L2-normalised so that a dot product is the cosine similarity. The backends (sentence-transformers,
a causal LM's hidden states, or any :class:`~real_hub.encoders.Encoder`) live in ``encoders.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ..arrays import unit_rows, vector_fault
from ..encoders import BACKENDS, DEFAULT_STATIC_DIMS, ST_BACKENDS, Backend, Encoder, StBackend, load_encoder
from ..errors import ColumnError, ConfigError, RowError
from ..models import (
    DEFAULT_EMBEDDER,
)
from ..processor import Processor, split_extra_args
from ..validate import (
    CANDIDATE_RESPONSE_COLUMN,
    check_list,
    check_response,
    response_columns,
    row_label,
)

logger = logging.getLogger(__name__)


class EmbedResponses(Processor):
    """Add L2-normalised response embeddings, for ``dataset.map(EmbedResponses(), batched=True)``.

    Pairs (``chosen``/``rejected``) get ``chosen_embedding`` and ``rejected_embedding``; candidates
    (``responses``) get ``responses_embedding``, one vector per response. A text that repeats within a
    batch is embedded once.

    Args:
        model: Hub id, local folder or ``.gguf`` file, or an :class:`Encoder` object.
        backend: ``"sentence-transformers"``, ``"causal-lm"`` (REAL's LLM hidden states), ``"static"``
            (model2vec static embeddings: a model2vec model as it is, or distilled once from a
            sentence-transformers model and cached; the ``static`` extra) or ``"auto"``
            (sentence-transformers when the model has a ``modules.json``).
        st_backend: How a sentence-transformers model runs: ``"torch"``, ``"onnx"`` (exported once to
            ONNX and run by ONNX Runtime; the ``onnx`` extra) or ``"openvino"`` (the same export run by
            OpenVINO; the ``openvino`` extra). Exports are cached like distilled static models.
        static_dims: PCA dimensions of a static model distilled with ``backend="static"`` (``None``
            keeps the teacher's); part of the cache key.
        columns: Columns to embed; by default ``responses`` if present, else ``chosen`` and ``rejected``.
        revision: Hub revision of the model.
        batch_size: Texts per forward pass.
        dtype: Stored precision of the vectors, ``"float32"`` or ``"float16"``.
        device: Torch device; by default a GPU when present (``cuda:<rank>`` with ``with_rank=True``).
        max_length: Token cap per response for the causal-LM backend (longer responses are cut).
        model_dtype: Weights' precision for the causal-LM backend.
        gguf_file: GGUF file name inside the model folder, for the causal-LM backend.
        trust_remote_code: Allow models that ship their own Python code.
        with_rank: Expect ``Dataset.map(..., with_rank=True)`` and put each rank on its own GPU.
    """

    def __init__(
        self,
        model: str | Encoder = DEFAULT_EMBEDDER,
        *,
        backend: Backend = "auto",
        st_backend: StBackend = "torch",
        static_dims: int | None = DEFAULT_STATIC_DIMS,
        columns: Sequence[str] | None = None,
        revision: str | None = None,
        batch_size: int = 64,
        dtype: Literal["float32", "float16"] = "float32",
        device: str | None = None,
        max_length: int | None = None,
        model_dtype: str = "float32",
        gguf_file: str | None = None,
        trust_remote_code: bool = False,
        with_rank: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
        if st_backend not in ST_BACKENDS:
            raise ConfigError(
                f"st_backend must be one of {', '.join(map(repr, ST_BACKENDS))}, got {st_backend!r}"
            )
        if st_backend != "torch" and backend in ("causal-lm", "static"):
            raise ConfigError(
                f"st_backend={st_backend!r} runs a sentence-transformers model; it does not apply to "
                f"backend={backend!r}"
            )
        if static_dims is not None and static_dims < 1:
            raise ConfigError(
                f"static_dims must be a positive number of dimensions or None, got {static_dims}"
            )
        if dtype not in ("float32", "float16"):
            raise ConfigError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if not isinstance(model, str) and not isinstance(model, Encoder):
            raise ConfigError("model must be a model name, a path, or an object with encode(texts) and dim")
        self.model = model
        self.backend = backend
        self.st_backend = st_backend
        self.static_dims = static_dims
        self.columns = tuple(columns) if columns is not None else None
        self.revision = revision
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.max_length = max_length
        self.model_dtype = model_dtype
        self.gguf_file = gguf_file
        self.trust_remote_code = trust_remote_code
        self.with_rank = with_rank
        self._reset()

    def _reset(self) -> None:
        self._encoders: dict[int | None, Encoder] = {}

    # -- model ---------------------------------------------------------------------------------
    def encoder(self, rank: int | None = None) -> Encoder:
        """The backend, loaded on first use (once per process and rank)."""
        if not isinstance(self.model, str):
            return self.model
        if rank not in self._encoders:
            self._encoders[rank] = self._load(rank)
        return self._encoders[rank]

    def _load(self, rank: int | None) -> Encoder:
        from ..models import pick_device

        assert isinstance(self.model, str)
        return load_encoder(
            self.model,
            backend=self.backend,
            st_backend=self.st_backend,
            revision=self.revision,
            device=pick_device(self.device, rank),
            batch_size=self.batch_size,
            static_dims=self.static_dims,
            max_length=self.max_length,
            model_dtype=self.model_dtype,
            gguf_file=self.gguf_file,
            trust_remote_code=self.trust_remote_code,
        )

    @property
    def dim(self) -> int:
        """The embedding dimension (loads the model)."""
        return int(self.encoder().dim)

    # -- columns -------------------------------------------------------------------------------
    def input_columns(self, present: Sequence[str]) -> tuple[str, ...]:
        """The columns this processor embeds in data with columns ``present``."""
        if self.columns is not None:
            missing = [c for c in self.columns if c not in present]
            if missing:
                raise ColumnError.missing(missing, present)
            return self.columns
        return response_columns(present, action="EmbedResponses (or pass columns=[...]) embeds")

    def output_features(self, features: Any) -> Any:
        """``features`` plus the embedding columns, declared as fixed-length lists.

        Declare the vectors' length with
        ``ds.map(e, batched=True, features=e.output_features(ds.features))``.
        """
        from datasets import Features, List, Value

        value = Value(self.dtype)
        out = Features(dict(features))
        for col in self.input_columns(list(features)):
            vec = List(value, length=self.dim)
            out[f"{col}_embedding"] = List(vec) if col == CANDIDATE_RESPONSE_COLUMN else vec
        return out

    # -- the map function ------------------------------------------------------------------------
    def process(self, batch: Mapping[str, Any], *args: Any) -> dict[str, Any]:
        """Embed one batch; returns only the new ``<column>_embedding`` columns."""
        indices, rank = split_extra_args(args, self.with_rank)
        columns = self.input_columns(list(batch.keys()))
        position: dict[str, int] = {}
        plan: dict[str, Any] = {}
        for col in columns:
            values = batch[col]
            if col == CANDIDATE_RESPONSE_COLUMN:
                rows = []
                for i, row in enumerate(values):
                    row = check_list(row, row=row_label(i, indices), column=col, what="a list of strings")
                    ids = []
                    for j, text in enumerate(row):
                        text = check_response(text, row=row_label(i, indices), column=f"{col}[{j}]")
                        ids.append(position.setdefault(text, len(position)))
                    rows.append(np.asarray(ids, dtype=np.int64))
                plan[col] = rows
            else:
                ids = [
                    position.setdefault(
                        check_response(v, row=row_label(i, indices), column=col), len(position)
                    )
                    for i, v in enumerate(values)
                ]
                plan[col] = np.asarray(ids, dtype=np.int64)
        encoder = self.encoder(rank)
        texts = list(position)
        raw = _encoded(encoder, texts)
        vectors, bad = unit_rows(raw)
        if bad.any():
            raise _bad_vector_error(raw, int(np.flatnonzero(bad)[0]), texts, plan, indices)
        vectors = vectors.astype(self.dtype, copy=False)
        out: dict[str, Any] = {}
        for col, ids in plan.items():
            out[f"{col}_embedding"] = [vectors[r] for r in ids] if isinstance(ids, list) else vectors[ids]
        return out


def _encoded(encoder: Encoder, texts: list[str]) -> np.ndarray:
    """The encoder's ``[len(texts), dim]`` float32 output, checked: one finite vector of ``dim`` per text."""
    dim = int(encoder.dim)
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    name = type(encoder).__name__
    encoded = encoder.encode(texts)
    try:
        vectors = np.asarray(encoded, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise RowError(
            f"expected the encoder {name} to return ({len(texts)}, {dim}) numbers, found other values: {err}"
        ) from None
    if vectors.shape != (len(texts), dim):
        raise RowError(
            f"expected the encoder {name} to return ({len(texts)}, {dim}): one vector of its dim={dim} per"
            f" text, found an array of shape {vectors.shape}"
        )
    return vectors


def _bad_vector_error(
    vectors: np.ndarray, k: int, texts: list[str], plan: dict[str, Any], indices: Sequence[int] | None
) -> RowError:
    """The error for text ``k`` embedded to a zero or non-finite vector, naming the first row holding it."""
    where: dict[str, Any] = {}
    for col, ids in plan.items():
        rows = ids if isinstance(ids, list) else [np.asarray([v]) for v in ids]
        hit = next((i for i, r in enumerate(rows) if (r == k).any()), None)
        if hit is not None:
            where = {"row": row_label(hit, indices), "column": col}
            break
    return RowError(
        f"the response {texts[k][:60]!r} embedded to {vector_fault(vectors[k])}: expected a non-zero vector"
        " of finite numbers (check the encoder)",
        **where,
    )
