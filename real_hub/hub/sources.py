"""Loading a source dataset: local data files, a folder in the Hub layout, or a Hub id."""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import lzma
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..errors import FormatError, HubError, hub_error
from .folder import check_folder

logger = logging.getLogger(__name__)

FILE_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
_COMPRESSION = (".gz", ".bz2", ".xz", ".zst")


def file_format(path: str | Path) -> str | None:
    """``json``, ``parquet`` or ``csv`` from a file name (a compression suffix is looked through)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    return FILE_FORMATS.get(suffixes[-1]) if suffixes else None


def load_source(
    data: str | Sequence[str],
    *,
    split: str = "train",
    config: str | None = None,
    revision: str | None = None,
    data_format: str | None = None,
) -> Dataset:
    """Load data files, one Hub-layout folder, or one Hub dataset id as a ``Dataset``.

    Data files end in ``.json``, ``.jsonl``, ``.parquet`` or ``.csv`` (optionally compressed); a folder
    loads with ``load_dataset(folder, config)``.

    Args:
        data: One path or Hub id, or several data files of one format.
        split: The split to load from a folder or Hub id (data files form one split).
        config: Config of a folder or Hub dataset.
        revision: Hub revision.
        data_format: ``json``, ``parquet`` or ``csv`` when file names do not tell.

    Raises:
        FormatError: A local path that does not exist (anything starting with ``.``, ``/`` or ``~``, or with
            more than one ``/``, is a path, never a Hub id), an empty file, a malformed JSON line (the error
            names the file and line), unknown or mixed formats.
        HubError: A Hub id that cannot be loaded (unreachable Hub, unknown repo, no access).
        CorruptFileError: A folder whose ``README.md`` does not parse, or a shard of the config read that is
            missing, empty, truncated or not parquet (the message names the file).
    """
    from datasets import load_dataset

    items = [data] if isinstance(data, (str, Path)) else list(data)
    if not items:
        raise FormatError("no data given: expected data files, a folder or a Hub dataset id")
    paths = [Path(str(d)).expanduser() for d in items]
    if data_format is not None and data_format not in set(FILE_FORMATS.values()):
        raise FormatError(f"unknown data format {data_format!r}: expected json, parquet or csv")
    if len(paths) == 1 and paths[0].is_dir():
        check_folder(paths[0], config)
        try:
            return _load(lambda: load_dataset(str(paths[0]), config, split=split), str(paths[0]), FormatError)
        except FormatError:
            check_folder(paths[0], config, deep=True)  # a shard that cannot be read in full: name it
            raise
    looks_like_files = (
        any(p.exists() or file_format(p) or _is_path(str(d)) for p, d in zip(paths, items, strict=True))
        or len(paths) > 1
    )
    if looks_like_files:
        missing = [str(d) for p, d in zip(paths, items, strict=True) if not p.is_file()]
        if missing:
            raise FormatError(
                f"no such file: {', '.join(missing)} (a local path: expected a file or folder there)"
            )
        formats = {data_format or file_format(p) for p in paths}
        if None in formats or len(formats) != 1:
            raise FormatError(
                f"cannot tell the format of {', '.join(map(str, paths))}: expected files ending in .json, "
                ".jsonl, .parquet or .csv (optionally .gz), all of one format, or pass the format"
            )
        empty = [str(p) for p in paths if p.stat().st_size == 0]
        if empty:
            raise FormatError(f"the file {', '.join(empty)} is empty: expected rows of data")
        fmt = formats.pop()
        files = [str(p) for p in paths]
        try:
            return _load(
                lambda: load_dataset(fmt, data_files=files, split="train"), ", ".join(files), FormatError
            )
        except FormatError:
            if fmt == "json":
                _raise_json_fault(paths)
            raise
    name = str(items[0])
    return _load(
        lambda: load_dataset(name, config, split=split, revision=revision),
        f"{name} from the Hub (no local file or folder has that name)",
        HubError,
    )


def load_splits(data: str, *, config: str | None = None, revision: str | None = None) -> dict[str, Dataset]:
    """Every split of a folder or Hub id (``load_dataset(data, config)``); data files give one, ``train``.

    Errors are :func:`load_source`'s.
    """
    from datasets import DatasetDict, load_dataset

    path = Path(data).expanduser()
    if not path.is_dir() and (path.exists() or file_format(path) or _is_path(data)):
        return {"train": load_source(data)}
    if path.is_dir():
        check_folder(path, config)
    what = str(path) if path.is_dir() else f"{data} from the Hub (no local file or folder has that name)"
    try:
        loaded = _load(
            lambda: load_dataset(str(path) if path.is_dir() else data, config, revision=revision),
            what,
            FormatError if path.is_dir() else HubError,
        )
    except FormatError:
        if path.is_dir():
            check_folder(path, config, deep=True)  # a shard that cannot be read in full: name it
        raise
    return dict(loaded) if isinstance(loaded, DatasetDict) else {"train": loaded}


def _is_path(text: str) -> bool:
    """Whether ``text`` can only be a local path, never a Hub id (``name`` or ``owner/name``)."""
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text


def _open_text(path: Path) -> Any:
    suffix = path.suffix.lower()
    opener: Any = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix, open)
    return opener(path, "rt", encoding="utf-8", errors="replace")


def _raise_json_fault(paths: Sequence[Path]) -> None:
    """Raise a :class:`FormatError` naming the file and line of the first malformed JSON, or return."""
    for path in paths:
        try:
            with _open_text(path) as f:
                text = f.read()
        except (OSError, EOFError, lzma.LZMAError):
            return  # not readable as compressed text: the loader's own error says more
        if not text.strip():
            raise FormatError(f"the file {path} is empty: expected rows of data")
        if text.lstrip().startswith("["):  # one JSON document: a list of rows
            try:
                json.loads(text)
                continue
            except json.JSONDecodeError as err:
                raise FormatError(
                    f"{path}, line {err.lineno}: malformed JSON ({err.msg}, column {err.colno}); expected a "
                    "JSON list of row objects"
                ) from None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise FormatError(
                    f"{path}, line {number}: malformed JSON ({err.msg}, column {err.colno}); expected one "
                    f"JSON object per line, found {line[:80]!r}"
                ) from None
            if not isinstance(value, dict):
                raise FormatError(
                    f"{path}, line {number}: expected a JSON object (one row), found {type(value).__name__}"
                    f" {line[:80]!r}"
                )


def _load(call, what: str, error: type[Exception]) -> Dataset:  # type: ignore[no-untyped-def]
    try:
        return call()
    except (FormatError, HubError):
        raise
    except Exception as err:  # datasets and the Hub client raise many types: one line that names the input
        mapped = hub_error(err, f"could not load {what}")
        if mapped is not None:
            raise mapped from err
        message = " ".join(str(err).split()) or type(err).__name__
        if len(message) > 300:
            message = message[:300] + "..."
        raise error(f"could not load {what}: {type(err).__name__}: {message}") from err


_LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING")
_LICENSE_NAMES = (
    ("MIT License", "mit"),
    ("Apache License", "apache-2.0"),
    ("Creative Commons Attribution-ShareAlike 4.0", "cc-by-sa-4.0"),
    ("Creative Commons Attribution 4.0", "cc-by-4.0"),
    ("Attribution-NonCommercial 4.0", "cc-by-nc-4.0"),
    ("BSD 3-Clause", "bsd-3-clause"),
)


def source_license(data: str | Sequence[str]) -> str | None:
    """The source's licence id when it can be known, else ``None``; never raises.

    It is read from a Hub dataset's card, or from a LICENSE file beside local data files (recognised by
    its first lines).
    """
    first = Path(str(data if isinstance(data, (str, Path)) else (list(data) or [""])[0])).expanduser()
    if first.exists():
        folder = first if first.is_dir() else first.parent
        for name in _LICENSE_FILES:
            path = folder / name
            if path.is_file():
                head = path.read_text(encoding="utf-8", errors="replace")[:400]
                for marker, licence in _LICENSE_NAMES:
                    if marker.lower() in head.lower():
                        return licence
        return None
    try:
        from huggingface_hub import DatasetCard

        licence = DatasetCard.load(str(first), repo_type="dataset").data.license
    except Exception as err:  # unreachable Hub, no card: the licence stays unknown
        logger.debug("No licence found for %s: %s", first, err)
        return None
    return licence if isinstance(licence, str) else None
