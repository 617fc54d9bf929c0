"""real-hub's cache of derived models: distilled static models, ONNX exports, GGUF files made plain.

Each derived model lives in a folder named for its source model and the settings it was made with
(:func:`derived_folder`) under :func:`cache_root`, and is built in a scratch folder that is renamed into
place (:func:`publish`), so a killed build never leaves a half-written model that a later run trusts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import WRITE_ERRNOS, clean_leftovers, describe, output_errors, remove_path, temp_path
from .errors import OutputError

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
    """Build into a fresh sibling folder, then rename it to ``target`` (atomic; a lost race is harmless).

    Scratch folders that killed builds left beside ``target`` are removed first. A full disk or a cache
    folder that cannot be written raises :class:`~real_hub.errors.OutputError` naming the folder.
    """
    with output_errors(target.parent, f"building {target.name}"):
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_leftovers(target)
        scratch = temp_path(target)
        scratch.mkdir()
    try:
        try:
            build(scratch)
        except OSError as err:
            if err.errno in WRITE_ERRNOS:
                raise OutputError(
                    f"building {target.name} in {target.parent} failed: {describe(err)}", folder=target.parent
                ) from err
            raise
        try:
            scratch.rename(target)
        except OSError:  # another process published first
            if not target.exists():
                raise
    finally:
        remove_path(scratch)
    return target
