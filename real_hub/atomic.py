"""Writing files so that no reader ever sees half of one, and what a failed write says.

Every file real-hub writes goes through here: it is written under a temporary name in the same folder
(``.<name>.<pid>-<random>.real-hub-tmp``), flushed to disk, then renamed over the final name with
``os.replace``, which is atomic on one file system. A killed writer leaves at most such a temporary file:
readers never open it (``datasets`` skips names starting with a dot) and the next write of the same file
removes it (:func:`clean_leftovers`). Append-only logs (the Space's annotation files) cannot be renamed
into place; :func:`append_line` starts each record on a fresh line, so a line torn by a killed writer
never swallows the next one.

An ``OSError`` while writing (no space left, no permission, a read-only file system) becomes one
:class:`~real_hub.errors.OutputError` line naming the folder and what failed (:func:`output_errors`),
and :func:`check_writable` finds an unwritable output folder before any expensive work starts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import OutputError

logger = logging.getLogger(__name__)

TMP_SUFFIX = ".real-hub-tmp"
"""Ends every temporary name real-hub writes (files beside their final name, and staging folders)."""
WRITE_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS") if hasattr(errno, name)
)
"""The ``errno`` values that mean a folder cannot take a write (full, over quota, no permission)."""
PROBE = "real-hub-probe"
"""The name :func:`check_writable` tries (as a temporary file: ``.real-hub-probe.<pid>-<random>...``)."""
STALE_AFTER = 24 * 3600.0
"""Seconds after which a temporary file counts as left over even if its writer's process id is alive
(process ids are reused)."""


def temp_path(path: str | Path) -> Path:
    """A fresh temporary name beside ``path``: hidden, marked with this process's id, never reused."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}")


def writer_gone(pid: int, mtime: float) -> bool:
    """Whether the process that made a temporary file (``pid``, last changed at ``mtime``) has stopped.

    True when no process has that id, or the file is older than :data:`STALE_AFTER`; never for this
    process (another thread of it may be writing).
    """
    if pid == os.getpid():
        return False
    if time.time() - mtime > STALE_AFTER:
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: trust the age alone
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    except OSError:
        return False
    return False


def writer_pid(token: str) -> int | None:
    """The process id in a temporary name's ``<pid>-<random>`` part, else ``None``."""
    pid, _, rest = token.partition("-")
    return int(pid) if pid.isdigit() and rest else None


def _leftover_pid(name: str, stem: str) -> int | None:
    """The writer's process id in a temporary name of the file ``stem``, else ``None``."""
    prefix = f".{stem}."
    if not (name.startswith(prefix) and name.endswith(TMP_SUFFIX)):
        return None
    return writer_pid(name[len(prefix) : -len(TMP_SUFFIX)])


def remove_path(path: Path) -> None:
    """Remove a file or a folder tree; one that is already gone is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_leftovers(path: str | Path) -> int:
    """Remove the temporary files that killed writers of ``path`` left beside it; return how many."""
    path = Path(path)
    removed = 0
    try:
        siblings = list(path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"))
    except OSError:
        return 0
    for tmp in siblings:
        pid = _leftover_pid(tmp.name, path.name)
        try:
            gone = pid is not None and writer_gone(pid, tmp.lstat().st_mtime)
        except FileNotFoundError:
            continue
        if gone:
            remove_path(tmp)
            removed += 1
            logger.debug("Removed %s, left by an interrupted write", tmp)
    return removed


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (renames into it) to disk, where the platform allows it."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as err:
        logger.debug("cannot open %s to flush it: %s", folder, err)
        return
    try:
        os.fsync(fd)
    except OSError as err:  # some file systems refuse fsync on a folder; the rename itself stands
        logger.debug("cannot flush folder %s: %s", folder, err)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Write ``path`` in one step: the block writes the yielded temporary path, which then replaces it.

    When the block raises (or the process is interrupted), the temporary file is removed and ``path``
    is as it was. Leftovers of earlier, killed writes of ``path`` are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    tmp = temp_path(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename; return ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text_atomic(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename (no newline translation)."""
    return write_bytes_atomic(path, text.encode(encoding))


def write_json_atomic(path: str | Path, data: Any, **dumps: Any) -> Path:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename.

    ``dumps`` go to :func:`json.dumps` (default ``indent=1``); the text ends with a newline.
    """
    dumps.setdefault("indent", 1)
    return write_text_atomic(path, json.dumps(data, **dumps) + "\n")


def append_line(path: str | Path, line: str, *, encoding: str = "utf-8") -> None:
    """Append ``line`` (one line, newline added) to ``path`` and flush it to disk.

    If the file ends in a line torn by a killed writer (no final newline), the new line starts on a
    fresh line, so the torn bytes stay as they were (a reader skips them) and the new record is whole.
    """
    data = line.rstrip("\n").encode(encoding) + b"\n"
    with open(path, "a+b") as fh:
        end = fh.seek(0, os.SEEK_END)
        if end:
            fh.seek(end - 1)
            if fh.read(1) != b"\n":
                data = b"\n" + data
        fh.write(data)  # append mode: at the end, whatever the position
        fh.flush()
        os.fsync(fh.fileno())


# ------------------------------------------------------------------------------------------- failures


def describe(err: OSError) -> str:
    """An ``OSError`` in a few words: ``no space left on device``, ``permission denied``, ..."""
    text = err.strerror or str(err) or type(err).__name__
    return text[:1].lower() + text[1:]


def _existing_folder(folder: Path) -> Path:
    """``folder``, or the nearest of its parents that exists (where a missing folder would be made)."""
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_writable(folder: str | Path, what: str = "output folder") -> None:
    """Raise :class:`OutputError` unless files can be created in ``folder`` (or where it would be made).

    Checks the permission bits and creates (then removes) an empty temporary file, so a read-only file
    system or a folder the user cannot write is found before any expensive work.
    """
    folder = Path(folder)
    probe = _existing_folder(folder)
    where = f"the {what} {folder}"
    if not probe.is_dir():
        raise OutputError(f"cannot write {where}: {probe} is a file, not a folder", folder=folder)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {where}: permission denied ({probe} is not writable)", folder=folder)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{PROBE}.{os.getpid()}-", suffix=TMP_SUFFIX, dir=probe)
        os.close(fd)
        os.unlink(name)
        clean_leftovers(probe / PROBE)  # probes of checks killed in between
    except OSError as err:
        raise OutputError(
            f"cannot write {where}: {describe(err)} (creating a file in {probe})", folder=folder
        ) from None


@contextlib.contextmanager
def output_errors(folder: str | Path, what: str) -> Iterator[None]:
    """Turn an ``OSError`` in the block into one :class:`OutputError` line: ``what`` in ``folder`` failed."""
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(f"{what} in {folder} failed: {describe(err)}", folder=folder) from err


__all__ = [
    "TMP_SUFFIX",
    "append_line",
    "atomic_path",
    "check_writable",
    "clean_leftovers",
    "output_errors",
    "temp_path",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
