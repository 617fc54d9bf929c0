"""Encoders behind REAL's embeddings: the :class:`Encoder` protocol and its backends.

- :class:`SentenceTransformerEncoder`: a sentence-transformers model's sentence embedding;
- :class:`CausalLMEncoder` (the REAL paper's own choice): a causal LM's last-layer hidden states,
  mean-pooled over the response's tokens (special tokens such as BOS are seen but not pooled);
- :class:`StaticEncoder`: a model2vec static model (the ``static`` extra), loaded as it is or distilled
  once from any sentence-transformers model and cached under :func:`cache_root`;
- :class:`ExportedEncoder`: a sentence-transformers model exported once to ONNX (cached likewise) and run
  by ONNX Runtime (the ``onnx`` extra) or OpenVINO (the ``openvino`` extra).

Any object with an ``encode(texts) -> ndarray`` method and a ``dim`` attribute stands in for a model,
which is how tests pass tiny ones (and how the embedding router reuses an embedder).
"""

from __future__ import annotations

import importlib
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from .cache import derived_folder, publish
from .errors import ConfigError, MissingExtraError, RowError
from .models import (
    ResolvedModel,
    cached,
    check_remote_code,
    is_sentence_transformer,
    load_causal_lm,
    load_sentence_transformer,
    resolve_model,
)

logger = logging.getLogger(__name__)


@runtime_checkable
class Encoder(Protocol):
    """What ``EmbedResponses`` needs of a model: texts in, one vector per text out."""

    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``[len(texts), dim]`` array (need not be normalised)."""
        ...


class SentenceTransformerEncoder:
    """A ``SentenceTransformer`` behind the :class:`Encoder` protocol."""

    def __init__(self, model: Any, batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size
        dim = model.get_embedding_dimension()
        self.dim = int(dim) if dim is not None else int(model.encode(["x"]).shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in one call (the model batches internally)."""
        return np.asarray(
            self.model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            ),
            dtype=np.float32,
        )


class CausalLMEncoder:
    """Mean of a causal LM's last-layer hidden states over a response's own tokens."""

    def __init__(
        self, model: Any, tokenizer: Any, batch_size: int = 16, max_length: int | None = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.dim = int(model.config.hidden_size)
        self.truncated = 0
        self._warned = False
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def token_limit(self) -> int | None:
        """Tokens kept per response: ``max_length``, capped at the model's context (its position count)."""
        from .logprobs.engine import context_length

        context = context_length(self.model)
        limits = [v for v in (self.max_length, context) if v is not None]
        return min(limits) if limits else None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in length-sorted batches; the result follows the input order.

        Responses longer than :meth:`token_limit` are cut from the right and counted in ``truncated``.
        """
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        limit = self.token_limit()
        encoded = self.tokenizer(list(texts), add_special_tokens=True, return_special_tokens_mask=True)
        if limit is not None:
            long = [k for k, ids in enumerate(encoded["input_ids"]) if len(ids) > limit]
            for k in long:  # cut from the right, as the tokenizer's truncation does
                encoded["input_ids"][k] = encoded["input_ids"][k][:limit]
                encoded["special_tokens_mask"][k] = encoded["special_tokens_mask"][k][:limit]
            if long:
                self.truncated += len(long)
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "CausalLMEncoder: %d response(s) longer than %d tokens were cut to fit (counted in "
                        "encoder.truncated; max_length sets the cap, the model's context bounds it)",
                        len(long),
                        limit,
                    )
        lengths = [len(ids) for ids in encoded["input_ids"]]
        order = np.argsort(lengths, kind="stable")[::-1]
        body = self.model.base_model
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(lengths[r] for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            attn = torch.zeros((len(rows), width), dtype=torch.long)
            pool = torch.zeros((len(rows), width), dtype=torch.float32)
            for k, r in enumerate(rows):
                n = lengths[r]
                ids[k, :n] = torch.tensor(encoded["input_ids"][r])
                attn[k, :n] = 1
                pool[k, :n] = 1.0 - torch.tensor(encoded["special_tokens_mask"][r], dtype=torch.float32)
            if bool((pool.sum(1) == 0).any()):
                bad = int(rows[int((pool.sum(1) == 0).nonzero()[0])])
                raise RowError(
                    f"expected a response with a token besides special tokens, found {texts[bad][:60]!r}"
                )
            with torch.inference_mode():
                hidden = body(input_ids=ids.to(device), attention_mask=attn.to(device)).last_hidden_state
            hidden = hidden.float().cpu()
            mean = (hidden * pool[..., None]).sum(1) / pool.sum(1, keepdim=True)
            out[rows] = mean.numpy()
        return out


# -- optional backends: static (model2vec) and exported graphs (ONNX Runtime, OpenVINO) ------------------

StBackend = Literal["torch", "onnx", "openvino"]
ST_BACKENDS: tuple[str, ...] = ("torch", "onnx", "openvino")
DEFAULT_STATIC_DIMS = 256
ONNX_OPSET = 17

_EXTRAS = {
    # module -> (extra, what needs it)
    "model2vec": ("static", "the static backend (model2vec)"),
    "skeletoken": ("static", "distilling a static model (model2vec.distill)"),
    "onnxruntime": ("onnx", "st_backend='onnx' (ONNX Runtime)"),
    "openvino": ("openvino", "st_backend='openvino' (OpenVINO)"),
}


def require(module: str) -> Any:
    """Import an optional dependency, or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra, what = _EXTRAS[module]
        raise MissingExtraError(
            f"{what} needs the {module!r} package, which is not installed; "
            f"install it with `pip install 'real-hub[{extra}]'`",
            extra=extra,
        ) from None


class StaticEncoder:
    """A model2vec ``StaticModel`` (mean of per-token vectors, no transformer at run time)."""

    def __init__(self, model: Any, batch_size: int = 1024) -> None:
        self.model = model
        self.batch_size = batch_size
        self.dim = int(model.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: tokenize, look up and average; one process (``Dataset.map`` parallelises)."""
        return np.asarray(
            self.model.encode(list(texts), batch_size=self.batch_size, use_multiprocessing=False),
            dtype=np.float32,
        )


def _is_model2vec(resolved: ResolvedModel) -> bool:
    """Whether a resolved model is already a model2vec static model (``model_type: model2vec``)."""
    if resolved.is_local:
        config = Path(resolved.path) / "config.json"
        if not config.exists():
            return False
        text = config.read_text()
    else:
        from huggingface_hub import hf_hub_download

        try:
            text = Path(hf_hub_download(resolved.path, "config.json", revision=resolved.revision)).read_text()
        except Exception:  # no config.json (or unreachable): not a model2vec model we can read
            return False
    try:
        return json.loads(text).get("model_type") == "model2vec"
    except json.JSONDecodeError:
        return False


def distill_static(source: str, target: Path, *, dims: int | None, device: str) -> None:
    """Distil a model2vec static model from the sentence-transformers model at ``source`` into ``target``.

    Every token of the teacher's vocabulary goes once through the teacher (mean-pooled), then PCA to
    ``dims`` and SIF weighting (model2vec's defaults); vectors are kept in float32.
    """
    require("model2vec")
    require("skeletoken")
    from model2vec.distill import distill

    model = distill(source, pca_dims=dims, device=device, quantize_to="float32")
    model.save_pretrained(str(target))


def load_static_model(
    name: str,
    *,
    revision: str | None = None,
    dims: int | None = DEFAULT_STATIC_DIMS,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> Any:
    """A model2vec ``StaticModel`` for ``name``, once per process.

    ``name`` is a model2vec model (Hub id or folder), loaded as it is; or any sentence-transformers
    model, distilled on first use into :func:`cache_root` ``/static/`` and read from there afterwards.
    """
    require("model2vec")
    resolved = resolve_model(name, revision)
    check_remote_code(resolved, trust_remote_code)
    key = ("static", resolved.path, resolved.revision, dims)

    def load() -> Any:
        from model2vec import StaticModel

        if _is_model2vec(resolved):
            logger.info("Loading static model %s from %s (%s)", name, resolved.path, resolved.source)
            return StaticModel.from_pretrained(resolved.path, force_download=False)
        import model2vec

        settings = {
            "pca_dims": dims,
            "sif_coefficient": 1e-4,
            "dtype": "float32",
            "model2vec": model2vec.__version__,
        }
        target = derived_folder("static", resolved, settings)
        if not (target / "config.json").exists():
            logger.info(
                "Distilling a static model from %s (once; kept in %s). This embeds every token of the "
                "vocabulary once: minutes on a CPU for a MiniLM-sized model.",
                name,
                target,
            )
            publish(lambda tmp: distill_static(resolved.path, tmp, dims=dims, device=device), target)
        else:
            logger.info("Loading the static model distilled from %s at %s", name, target)
        return StaticModel.from_pretrained(str(target), force_download=False)

    return cached(key, load)


def _sentence_graph(model: Any, names: Sequence[str]) -> Any:
    """A ``SentenceTransformer`` as a module of its tokenizer's tensors, for ``torch.onnx.export``."""
    import torch

    class SentenceGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(dict(zip(names, tensors)))["sentence_embedding"]

    return SentenceGraph().eval()


def export_onnx(model: Any, resolved: ResolvedModel) -> Path:
    """Export a (CPU, eval-mode) ``SentenceTransformer`` to ONNX once; returns the cached ``model.onnx``.

    The graph takes the tokenizer's tensors (``input_ids``, ``attention_mask``, ...) with dynamic batch
    and sequence axes and returns the sentence embedding, pooling and all.
    """
    import torch

    sample = model.preprocess(["An example response to export.", "Another, somewhat longer one."])
    names = [k for k, v in sample.items() if isinstance(v, torch.Tensor)]
    settings = {"opset": ONNX_OPSET, "torch": torch.__version__.split("+")[0], "inputs": names}
    folder = derived_folder("onnx", resolved, settings)
    path = folder / "model.onnx"
    if path.exists():
        return path

    def build(tmp: Path) -> None:
        logger.info("Exporting %s to ONNX (once; kept in %s)", resolved.name, folder)
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
        axes["sentence_embedding"] = {0: "batch"}
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shapes taken as constants (checked in tests)
            torch.onnx.export(
                _sentence_graph(model, names),
                tuple(sample[n] for n in names),
                str(tmp / "model.onnx"),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes=axes,
                opset_version=ONNX_OPSET,
                dynamo=False,
            )

    publish(build, folder)
    return path


class ExportedEncoder:
    """A ``SentenceTransformer`` exported to ONNX, run by ONNX Runtime or OpenVINO.

    The model's own ``preprocess`` tokenizes (same truncation as ``encode``); batches are sorted by
    length, as ``SentenceTransformer.encode`` sorts them, to cut padding.
    """

    def __init__(
        self, model: Any, path: Path, runtime: str, batch_size: int = 64, device: str = "cpu"
    ) -> None:
        self.model = model
        self.path = path
        self.runtime = runtime
        self.batch_size = batch_size
        self.dim = int(model.get_embedding_dimension())
        if runtime == "onnx":
            ort = require("onnxruntime")
            providers = ["CPUExecutionProvider"]
            if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            session = ort.InferenceSession(str(path), providers=providers)
            self.inputs = [i.name for i in session.get_inputs()]
            self._run = lambda feed: session.run(None, feed)[0]
        elif runtime == "openvino":
            ov = require("openvino")
            compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            self.inputs = [i.get_any_name() for i in compiled.inputs]
            self._run = lambda feed: compiled(feed)[0]
        else:
            raise ConfigError(f"runtime must be 'onnx' or 'openvino', got {runtime!r}")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in length-sorted batches; the result follows the input order."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            features = self.model.preprocess([texts[r] for r in rows])
            feed = {n: features[n].numpy().astype(np.int64, copy=False) for n in self.inputs}
            out[rows] = np.asarray(self._run(feed), dtype=np.float32)
        return out


def load_exported_encoder(
    name: str,
    runtime: str,
    *,
    revision: str | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> ExportedEncoder:
    """An :class:`ExportedEncoder` for a sentence-transformers model, exporting it on first use."""
    require("onnxruntime" if runtime == "onnx" else "openvino")
    resolved = resolve_model(name, revision)
    model = load_sentence_transformer(
        name, revision=revision, device="cpu", trust_remote_code=trust_remote_code
    )

    def load() -> ExportedEncoder:
        return ExportedEncoder(model, export_onnx(model, resolved), runtime, batch_size, device)

    return cached(("exported", runtime, resolved.path, resolved.revision, batch_size, device), load)


Backend = Literal["auto", "sentence-transformers", "causal-lm", "static"]
BACKENDS: tuple[str, ...] = ("auto", "sentence-transformers", "causal-lm", "static")


def load_encoder(
    model: str,
    *,
    backend: str = "auto",
    st_backend: str = "torch",
    revision: str | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    static_dims: int | None = DEFAULT_STATIC_DIMS,
    max_length: int | None = None,
    model_dtype: str | None = "float32",
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
) -> Encoder:
    """The :class:`Encoder` of ``model`` for ``backend``, its model loaded once per process.

    ``auto`` is sentence-transformers when the model has ``modules.json``, else its causal-LM hidden states.
    What REAL's ``EmbedResponses`` and Dr.SoW's embedding router both embed with.
    """
    if backend == "auto":
        resolved = resolve_model(model, revision, gguf_file=gguf_file)
        backend = "sentence-transformers" if is_sentence_transformer(resolved) else "causal-lm"
        if backend == "causal-lm" and st_backend != "torch":
            raise ConfigError(
                f"st_backend={st_backend!r} needs a sentence-transformers model; {model!r} has no "
                "modules.json"
            )
        logger.info("Embedding with the %s backend for %s", backend, model)
    if backend == "static":
        static = load_static_model(
            model, revision=revision, dims=static_dims, device=device, trust_remote_code=trust_remote_code
        )
        return StaticEncoder(static)
    if backend == "sentence-transformers" and st_backend != "torch":
        return load_exported_encoder(
            model,
            st_backend,  # type: ignore[arg-type]
            revision=revision,
            batch_size=batch_size,
            device=device,
            trust_remote_code=trust_remote_code,
        )
    if backend == "sentence-transformers":
        st = load_sentence_transformer(
            model, revision=revision, device=device, trust_remote_code=trust_remote_code
        )
        return SentenceTransformerEncoder(st, batch_size)
    lm, tok = load_causal_lm(
        model,
        revision=revision,
        device=device,
        dtype=model_dtype,
        gguf_file=gguf_file,
        trust_remote_code=trust_remote_code,
    )
    return CausalLMEncoder(lm, tok, batch_size, max_length)
