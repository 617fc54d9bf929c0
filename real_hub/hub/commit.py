"""Writing one config of a curated folder on local disk as one commit, as a push is on the Hub.

Writing config ``C`` of folder ``F`` (:func:`write_config`):

1. the splits are written as parquet into a staging folder, ``F/.real-hub-tmp/<pid>-<random>/C/``;
2. under a lock on ``F`` the card is read again (a card that cannot be parsed stops the write here),
   and what writers that are gone left is undone (:func:`clean_staging`);
3. the shards about to move are listed in the staging folder's journal (``moving.json``), then renamed
   into ``F/C/`` beside the old ones (a shard's name ends in its digest, and the card does not list the
   new ones yet, so readers still see the old state);
4. the new card is written to a temporary file and swapped in with ``os.replace``: from here on readers
   see the new state;
5. the shards under ``F/<config>/`` that the card no longer lists are removed, then the staging folder.

A writer killed after step 3 but before step 4 leaves shards that no card lists; its journal names them,
so the next write removes exactly those (and nothing a user put there).

At every instant each config the card lists has all its files, so ``load_dataset(F, config)`` reads
either the complete old or the complete new set. A failure before step 4 (no space left, no
permission) removes what the write added and leaves ``F`` as it was; ``datasets`` never reads the
staging folder or the temporary card (their names start with a dot).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard

from ..atomic import (
    check_writable,
    clean_leftovers,
    describe,
    fsync_dir,
    remove_path,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
    writer_gone,
    writer_pid,
)
from ..errors import ConfigError, CorruptFileError, OutputError, option
from .folder import (
    JOURNAL,
    README,
    REPAIR_HINT,
    SHARD,
    STAGING,
    WILDCARD,
    card_entries,
    entry_patterns,
    journal,
    read_card,
    shard_folders,
)

logger = logging.getLogger(__name__)

_OLD_TMP = re.compile(r"^\.[A-Za-z0-9][A-Za-z0-9_.-]*\.parquet\.tmp$")  # what real-hub < 0.2.0 staged


def _checkpoint(step: str) -> None:
    """Called after each step of :func:`write_config` (``staged``, ``moved``, ``card``, ``cleaned``).

    Does nothing; tests replace it to stop a writer at an exact point.
    """


def check_output(folder: str | Path, config: str | None = None, overwrite: bool = False) -> None:
    """Refuse now, before any expensive step, a write of ``config`` that :func:`write_config` would refuse.

    The folder must be writable and its card readable; with ``config``, the config must be new (or
    ``overwrite`` given) and the card must not have lost configs whose shards are on disk.
    """
    folder = Path(folder)
    check_writable(folder)
    if folder.is_dir():
        card = read_card(folder)
        if config is not None:
            _refuse(folder, card, config, overwrite)


def _refuse(folder: Path, card: DatasetCard | None, config: str, overwrite: bool) -> None:
    names = [e["config_name"] for e in card_entries(card)]
    if config in names and not overwrite:
        raise ConfigError(
            f"config {config!r} already exists in {folder}; pass {option('overwrite', True)} to replace it"
        )
    if not names:
        lost = [name for name in shard_folders(folder) if name != config]
        if lost:
            state = "has no README.md" if card is None else "has a README.md that lists no configs"
            raise CorruptFileError(
                f"{folder} {state}, but holds shards of config(s) {lost}: a card written now would leave "
                f"them out; " + REPAIR_HINT.format(folder=folder),
                file=folder / README,
            )


def folder_lock(folder: Path) -> Any:
    """A lock (between processes of this user) on writing ``folder``, kept outside the folder."""
    from filelock import FileLock

    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]
    try:
        user = getpass.getuser()
    except Exception:  # no user name (some containers): one lock folder for all
        user = "any"
    root = Path(tempfile.gettempdir()) / f"real-hub-locks-{re.sub(r'[^A-Za-z0-9_.-]', '_', user)}"
    root.mkdir(exist_ok=True)
    return FileLock(str(root / f"{key}.lock"))


def _new_stage(folder: Path) -> Path:
    """A fresh staging folder ``folder/.real-hub-tmp/<pid>-<random>``."""
    for _ in range(3):  # another writer may remove the empty staging root between the two calls
        (folder / STAGING).mkdir(parents=True, exist_ok=True)
        try:
            return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=folder / STAGING))
        except FileNotFoundError:
            continue
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=folder / STAGING))


def clean_staging(folder: Path, card: DatasetCard | None) -> None:
    """Undo what writers that are gone left; call it under :func:`folder_lock`.

    Their staging folders go, and the shards they moved in that ``card`` (the folder's card, read under
    the lock) does not list.
    """
    root = folder / STAGING
    if not root.is_dir():
        return
    listed = {p for e in card_entries(card) for p in entry_patterns(e)}
    for entry in root.iterdir():
        pid = writer_pid(entry.name)
        try:
            gone = pid is not None and writer_gone(pid, entry.lstat().st_mtime)
        except FileNotFoundError:
            continue
        if not gone:
            continue
        for rel in journal(entry):
            if rel not in listed:
                (folder / rel).unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # the folder of a config that was never committed
                    (folder / rel).parent.rmdir()
        remove_path(entry)
        logger.debug("Removed %s and its uncommitted shards, left by an interrupted write", entry)
    with contextlib.suppress(OSError):  # not empty: another writer is staging
        root.rmdir()


@contextlib.contextmanager
def write_step(folder: Path, action: str, doing: str) -> Iterator[None]:
    """One step of a write: an ``OSError`` becomes one line, ``cannot <action>: <why> (<doing>)``."""
    try:
        yield
    except OSError as err:
        if isinstance(err, OutputError):
            raise
        raise OutputError(
            f"cannot {action}: {describe(err)} ({doing}); the folder is as it was", folder=folder
        ) from err


def write_config(
    folder: str | Path,
    config: str,
    write_shards: Callable[[Path], dict[str, str]],
    make_card: Callable[[DatasetCard | None, dict[str, str]], DatasetCard],
    *,
    overwrite: bool = False,
) -> dict[str, str]:
    """Write config ``config`` of ``folder`` as one commit (see the module docstring); return its files.

    ``write_shards(root)`` writes the config's shards under ``root/<config>/`` and returns split -> path
    relative to ``root``; ``make_card(old_card, paths)`` builds the new card.

    Raises:
        OutputError: the folder cannot be written (permission, read-only, no space left); it is as it was.
        CorruptFileError: the card cannot be parsed, or has lost configs whose shards are on disk.
        ConfigError: ``config`` exists and ``overwrite`` is not set.
    """
    folder = Path(folder)
    check_output(folder, config, overwrite)
    action = f"write config {config!r} to {folder}"
    with write_step(folder, action, "creating the folder"):
        folder.mkdir(parents=True, exist_ok=True)
        stage = _new_stage(folder)
    try:
        with write_step(folder, action, "writing the new shards"):
            paths = write_shards(stage)
        _checkpoint("staged")
        with folder_lock(folder):
            card = read_card(folder)
            with write_step(folder, action, "removing what interrupted writes left"):
                clean_staging(folder, card)
            _refuse(folder, card, config, overwrite)
            added: list[Path] = []
            try:
                with write_step(folder, action, "moving the new shards in"):
                    write_json_atomic(stage / JOURNAL, sorted(paths.values()))
                    _move_in(stage, folder, paths, added)
                _checkpoint("moved")
                new_card = make_card(card, paths)
                with write_step(folder, action, f"writing {README}"):
                    clean_leftovers(folder / README)
                    write_text_atomic(folder / README, str(new_card))
            except BaseException:
                _take_back(folder, added)
                raise
            with contextlib.suppress(OSError):  # committed: the card names them now
                (stage / JOURNAL).unlink()
            _checkpoint("card")
            remove_unlisted(folder, new_card)
            _checkpoint("cleaned")
    finally:
        remove_path(stage)
        with contextlib.suppress(OSError):  # not empty: another writer is staging
            (folder / STAGING).rmdir()
    return paths


def _take_back(folder: Path, added: list[Path]) -> None:
    """After a failed commit: remove the shards it added that the card on disk does not list.

    The card is read again rather than assumed old: an interrupt can arrive after the swap.
    """
    listed = {p for e in card_entries(read_card(folder)) for p in entry_patterns(e)}
    for path in added:
        if path.relative_to(folder).as_posix() not in listed:
            path.unlink(missing_ok=True)


def _move_in(stage: Path, folder: Path, paths: dict[str, str], added: list[Path]) -> None:
    """Rename the staged shards into ``folder``; ``added`` collects those that were not there before."""
    for rel in paths.values():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        existed = target.exists()  # same name, same digest: the same bytes
        os.replace(stage / rel, target)
        if not existed:
            added.append(target)
    for parent in {(folder / rel).parent for rel in paths.values()}:
        fsync_dir(parent)


def remove_unlisted(folder: Path, card: DatasetCard) -> list[Path]:
    """Remove the shards under ``folder/<config>/`` that the card does not list; return them.

    Only configs laid out as real-hub writes them (every file listed exactly, under ``<config>/``) are
    cleaned, and only files named like real-hub's shards or its temporary files. Failures are logged:
    the card already points at complete files.
    """
    removed = []
    for entry in card_entries(card):
        name = entry["config_name"]
        listed = entry_patterns(entry)
        if not listed or any(WILDCARD.search(p) or not p.startswith(f"{name}/") for p in listed):
            continue
        keep = {Path(p).name for p in listed}
        sub = folder / name
        if not sub.is_dir():
            continue
        for path in sub.iterdir():
            stale = (SHARD.match(path.name) and path.name not in keep) or _OLD_TMP.match(path.name)
            if stale and path.is_file():
                try:
                    path.unlink()
                except OSError as err:
                    logger.warning("Could not remove the old shard %s: %s", path, describe(err))
                    continue
                removed.append(path)
    if removed:
        logger.debug("Removed %s", ", ".join(map(str, removed)))
    return removed


def copy_aside(path: Path, suffix: str) -> Path:
    """Copy ``path`` to ``path<suffix>`` (replacing an older copy) through a temporary name."""
    return write_bytes_atomic(path.with_name(path.name + suffix), path.read_bytes())
