"""The prompt embedder: one of ``EmbedResponses``' backends, and distinct prompts embedded to a file.

Prompts are embedded the way responses are (:class:`~real_hub.EmbedResponses`, L2-normalised vectors),
by default with the ``static`` backend: all-MiniLM-L6-v2 distilled once into a model2vec static model,
hundreds of times faster than the transformer on a CPU, which is what a million prompts need.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, List, Value

from ..encoders import Encoder
from ..errors import ConfigError
from ..models import DEFAULT_EMBEDDER
from ..real.embed import EmbedResponses

TEXT = "text"
EMBEDDING = "text_embedding"
EMBED_BATCH = 2048
"""Prompts per ``Dataset.map`` batch while embedding."""
BACKEND_NAMES = {
    "static": {"backend": "static"},
    "sentence-transformers": {"backend": "sentence-transformers"},
    "causal-lm": {"backend": "causal-lm"},
    "onnx": {"backend": "sentence-transformers", "st_backend": "onnx"},
    "openvino": {"backend": "sentence-transformers", "st_backend": "openvino"},
}
"""Embedder names that pick a backend of the default model rather than name a model."""


def prompt_embedder(embedder: str | Encoder | EmbedResponses | None) -> EmbedResponses:
    """The ``EmbedResponses`` that embeds prompts (a ``text`` column) for ``embedder``.

    ``None``: the default model (all-MiniLM-L6-v2) on the ``static`` backend; a backend name (``"static"``,
    ``"sentence-transformers"``, ``"causal-lm"``, ``"onnx"``, ``"openvino"``): the default model on it; any
    other string: a model (Hub id or folder, backend chosen as ``EmbedResponses`` chooses it); an
    ``EmbedResponses`` (its model and options are used) or any :class:`~real_hub.Encoder`.
    """
    if embedder is None:
        return EmbedResponses(DEFAULT_EMBEDDER, backend="static", columns=[TEXT])
    if isinstance(embedder, str):
        if embedder in BACKEND_NAMES:
            return EmbedResponses(DEFAULT_EMBEDDER, columns=[TEXT], **BACKEND_NAMES[embedder])
        return EmbedResponses(embedder, columns=[TEXT])
    if isinstance(embedder, EmbedResponses):
        out = copy.copy(embedder)  # shares the loaded model; only the column differs
        out.columns = (TEXT,)
        return out
    if isinstance(embedder, Encoder):
        return EmbedResponses(embedder, columns=[TEXT])
    raise ConfigError(
        "embedder must be None (static MiniLM), a backend or model name, an EmbedResponses or an object with "
        f"encode(texts) and dim; got {type(embedder).__name__}"
    )


def embedder_name(embed: EmbedResponses) -> str:
    """How the card names the embedder: the model and its backend, or the encoder's class."""
    if not isinstance(embed.model, str):
        return type(embed.model).__name__
    backend = embed.backend if embed.st_backend == "torch" else f"{embed.backend}, {embed.st_backend}"
    if embed.backend == "static" and embed.static_dims is not None:
        backend += f", {embed.static_dims} dims"
    return f"{embed.model} ({backend})"


def embed_texts(texts: list[str], embed: EmbedResponses, folder: Path, name: str) -> Dataset:
    """The unit vectors of ``texts`` (column :data:`EMBEDDING`), written to ``folder`` and memory-mapped.

    The vectors live in an Arrow file, not in memory: the FAISS index and one query chunk are what a
    search holds, so memory grows with the index alone.
    """
    data = Dataset.from_dict({TEXT: texts}, features=Features({TEXT: Value("string")}))
    features = Features({EMBEDDING: List(Value(embed.dtype), length=embed.dim)})
    return data.map(
        embed,
        batched=True,
        batch_size=EMBED_BATCH,
        features=features,
        remove_columns=[TEXT],
        cache_file_name=str(folder / f"{name}.arrow"),
        new_fingerprint=uuid.uuid4().hex,  # a scratch file: nothing to reuse, and no hashing of the model
        load_from_cache_file=False,
        desc=f"Embedding {name}",
    )


def describe_embedder(embedder: Any) -> str:
    """:func:`embedder_name` of the embedder ``embedder`` stands for (nothing is loaded)."""
    return embedder_name(prompt_embedder(embedder))
