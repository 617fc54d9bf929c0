"""real-hub's cache of derived models: distilled static models, ONNX exports, GGUF files made plain.

Each derived model lives in a folder named for its source model and the settings it was made with
(:func:`derived_folder`) under :func:`cache_root`, and is built in a scratch folder that is renamed into
place (:func:`publish`), so a killed build never leaves a half-written model that a later run trusts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import ResolvedModel


def cache_root() -> Path:
    """Where derived models (distilled static models, ONNX exports) are kept.

    ``$REAL_HUB_CACHE`` if set, else ``$HF_HOME/real_hub`` (by default ``~/.cache/huggingface/real_hub``).
    """
    env = os.environ.get("REAL_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HOME).expanduser() / "real_hub"


def _source_signature(resolved: ResolvedModel) -> dict[str, Any]:
    """What identifies a source model's weights: its path/id and revision, plus file sizes and times."""
    sig: dict[str, Any] = {"name": resolved.name, "path": resolved.path, "revision": resolved.revision}
    if resolved.is_local:
        folder = Path(resolved.path)
        sig["files"] = sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.iterdir()
            if p.is_file() and p.suffix in {".json", ".safetensors", ".bin", ".txt", ".model", ".gguf"}
        )
    return sig


def derived_folder(kind: str, resolved: ResolvedModel, settings: Mapping[str, Any]) -> Path:
    """The cache folder of a model derived from ``resolved`` with ``settings`` (one per distinct pair)."""
    key = json.dumps({"source": _source_signature(resolved), "settings": dict(settings)}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = Path(resolved.name.rstrip("/")).name or "model"
    return cache_root() / kind / f"{stem}-{digest}"


def publish(build: Callable[[Path], None], target: Path) -> Path:
    """Build into a fresh sibling folder, then rename it to ``target`` (atomic; a lost race is harmless)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(scratch)
        try:
            scratch.rename(target)
        except OSError:  # another process published first
            if not target.exists():
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return target
