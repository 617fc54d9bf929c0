"""A curated set's folder on local disk: its card and shards read with named errors, configs written whole.

Writing config ``C`` of folder ``F`` (:func:`write_config`) is a commit, as a push is on the Hub:

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

Reading (:func:`read_card`, :func:`check_files`) names the file that is broken and how: a card whose
YAML does not parse (and the line), a card cut short, a shard that is missing, empty, truncated or not
parquet. :func:`real_hub.repair_card` rebuilds a broken card from the shards on disk.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
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
from ..errors import ConfigError, CorruptFileError, FormatError, OutputError, option

logger = logging.getLogger(__name__)

README = "README.md"
STAGING = ".real-hub-tmp"
"""The folder inside an output folder where a write stages its shards (hidden from ``datasets``)."""
JOURNAL = "moving.json"
"""In a write's staging folder: the shards it moves into the folder, written before it moves them."""
SHARD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*?-\d{5}-of-\d{5}(-[0-9a-f]{16})?\.parquet$")
"""The name of a shard real-hub writes: ``<split>-00000-of-00001-<digest>.parquet``."""
_OLD_TMP = re.compile(r"^\.[A-Za-z0-9][A-Za-z0-9_.-]*\.parquet\.tmp$")  # what real-hub < 0.2.0 staged
_HEADER = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
_GLOB = re.compile(r"[*?\[]")
REPAIR_HINT = "run `real-hub repair {folder}` (or real_hub.repair_card) to rebuild it from the shards on disk"


def _checkpoint(step: str) -> None:
    """Called after each step of :func:`write_config` (``staged``, ``moved``, ``card``, ``cleaned``).

    Does nothing; tests replace it to stop a writer at an exact point.
    """


# -------------------------------------------------------------------------------------------- reading


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def card_problem(text: str) -> str | None:
    """What is wrong with a card's text (``broken YAML at line N: ...``), or ``None`` if it reads.

    A card is broken when its YAML block is opened but never closed (a write cut short), does not parse,
    is not a mapping, or lists a config without a name or data files.
    """
    import yaml

    if not text.lstrip().startswith("---"):
        return None
    match = _HEADER.match(text)
    if match is None:
        return "truncated: the YAML block opened by '---' on line 1 is never closed"
    start = text[: match.start(2)].count("\n")
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {start + mark.line + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or str(err)
        return f"broken YAML{where}: {_one_line(what)}"
    if data is None:
        return None
    if not isinstance(data, dict):
        return f"the YAML block is a {type(data).__name__}, not a mapping"
    configs = data.get("configs", [])
    if not isinstance(configs, list):
        return "its 'configs' is not a list"
    for n, entry in enumerate(configs, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("config_name"), str):
            return f"config entry {n} of 'configs' has no config_name"
        if not entry.get("data_files"):
            return f"config {entry['config_name']!r} lists no data_files"
    meta = data.get("real_hub", {})
    if not isinstance(meta, dict) or not isinstance(meta.get("configs", {}), dict):
        return "its 'real_hub' block is not a mapping of configs"
    return None


def parse_card(path: Path, name: str | None = None, *, hint: str = "") -> DatasetCard:
    """The card in the file ``path``; :class:`CorruptFileError` naming it (as ``name``) if it is broken."""
    name = name or str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        problem: str | None = f"not UTF-8 text (byte {err.start})"
    else:
        problem = card_problem(text)
        if problem is None and hint and not text.strip() and shard_folders(path.parent):
            problem = "empty"
        if problem is None:
            try:
                return DatasetCard(text)
            except Exception as err:  # what huggingface_hub refuses in a parsed YAML block
                problem = f"unreadable card metadata ({type(err).__name__}: {_one_line(str(err))})"
    raise CorruptFileError(f"{name} is broken: {problem}" + (f"; {hint}" if hint else ""), file=path)


def read_card(folder: str | Path) -> DatasetCard | None:
    """The card ``folder/README.md``, or ``None`` if there is none.

    Raises:
        CorruptFileError: the card is not UTF-8, cut short, its YAML does not parse (the message names
            ``README.md`` and the line, and how to repair it), or it is empty while shards are on disk.
    """
    folder = Path(folder)
    path = folder / README
    if not path.is_file():
        return None
    return parse_card(path, hint=REPAIR_HINT.format(folder=folder))


def card_entries(card: DatasetCard | None) -> list[dict[str, Any]]:
    """The ``configs`` entries of a card's YAML."""
    return list(card.data.to_dict().get("configs", [])) if card is not None else []


def entry_splits(entry: dict[str, Any]) -> dict[str, list[str]]:
    """Split -> paths of one ``configs`` entry listed as ``[{split, path}, ...]`` (what real-hub writes)."""
    out: dict[str, list[str]] = {}
    items = entry.get("data_files", [])
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("split"), str):
            named = item.get("path")
            out.setdefault(item["split"], []).extend([named] if isinstance(named, str) else named or [])
    return out


def entry_patterns(entry: dict[str, Any]) -> list[str]:
    """The data file paths (or patterns) of one ``configs`` entry, in whichever form it lists them."""
    data_files = entry.get("data_files", [])
    items = [data_files] if isinstance(data_files, (str, dict)) else list(data_files or [])
    out: list[str] = []
    for item in items:
        named = item.get("path") if isinstance(item, dict) else item
        out += [named] if isinstance(named, str) else [p for p in named or [] if isinstance(p, str)]
    return out


def listed_files(card: DatasetCard | None, config: str) -> list[str]:
    """The paths the card lists for ``config`` (relative to the folder; patterns as written)."""
    return [p for e in card_entries(card) if e.get("config_name") == config for p in entry_patterns(e)]


def shard_folders(folder: Path) -> list[str]:
    """Sub-folders of ``folder`` holding committed real-hub shards (configs on disk), sorted.

    Shards that a write moved in but never committed (listed in its staging journal) do not count.
    """
    try:
        subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []
    pending = uncommitted(folder)
    return sorted(
        p.name
        for p in subs
        if any(SHARD.match(f.name) and f"{p.name}/{f.name}" not in pending for f in p.iterdir())
    )


def parquet_problem(path: Path) -> str | None:
    """What is wrong with a data file (missing, empty, truncated, not parquet), or ``None``."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size == 0:
        return "empty (0 bytes)"
    if path.suffix != ".parquet":
        return None
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(max(size - 4, 0))
        tail = fh.read(4)
    if head != b"PAR1":
        return f"not a parquet file (it starts with {head!r}, not b'PAR1')"
    if size < 12 or tail != b"PAR1":
        return f"truncated ({size} bytes, no parquet footer)"
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ...
        return f"not readable as parquet ({_one_line(str(err))[:200]})"
    return None


def check_files(folder: str | Path, card: DatasetCard | None, configs: list[str]) -> None:
    """Raise :class:`CorruptFileError` naming the first file that keeps ``configs`` from loading.

    The files of ``configs`` must be sound parquet; every other config's files must exist, because
    ``datasets`` resolves the files of all a card's configs to load any one of them. Paths with
    wildcards are not checked (``datasets`` resolves them).
    """
    folder = Path(folder)
    for entry in card_entries(card):
        config = entry["config_name"]
        for rel in entry_patterns(entry):
            if _GLOB.search(rel):
                continue
            path = folder / rel
            problem = (
                parquet_problem(path) if config in configs else ("missing" if not path.is_file() else None)
            )
            if problem is None:
                continue
            fix = f"write config {config!r} again with {option('overwrite', True)}, or restore the file"
            if config not in configs:
                fix = f"datasets needs every config's files to load any of them; {fix}"
            raise CorruptFileError(
                f"{path} is {problem}: a shard of config {config!r} that {folder / README} lists; {fix}",
                file=path,
            )


def check_folder(folder: str | Path, config: str | None = None, *, deep: bool = False) -> None:
    """Raise :class:`CorruptFileError` if ``load_dataset(folder, config)`` would meet a broken file.

    The error names a card that does not parse, or a missing or broken shard of the config that will be
    read (the card's default when ``config`` is None). ``deep`` also reads the config's shards in full
    (after ``load_dataset`` failed: to name the file it could not read).
    """
    card = read_card(folder)
    entries = card_entries(card)
    names = [e["config_name"] for e in entries]
    if config is None:
        marked = [e["config_name"] for e in entries if e.get("default")]
        config = (marked or (names if len(names) == 1 else [n for n in names if n == "default"]) or [None])[0]
    if config in names:
        check_files(folder, card, [config])
        found = find_unreadable(folder, card, config) if deep else None
        if found is not None:
            raise found


def find_unreadable(folder: str | Path, card: DatasetCard | None, config: str) -> CorruptFileError | None:
    """The error naming a listed file of ``config`` that pyarrow cannot read in full, if there is one."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    for rel in listed_files(card, config):
        if _GLOB.search(rel) or not rel.endswith(".parquet"):
            continue
        path = folder / rel
        problem = parquet_problem(path)
        if problem is None:
            try:
                pq.read_table(path)
            except Exception as err:
                problem = f"corrupt ({_one_line(str(err))[:200]})"
        if problem is not None:
            return CorruptFileError(f"{path} is {problem}: a shard of config {config!r}", file=path)
    return None


def _card_stamp(folder: Path) -> tuple[int, int, int] | None:
    """What changes when a writer swaps the card in (a new file: inode, time, size)."""
    try:
        st = (folder / README).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def load_config(folder: str | Path, config: str, *, attempts: int = 5) -> tuple[Any, DatasetCard | None]:
    """``load_dataset(folder, config)`` read afresh, and the card it was read under; errors name the file.

    A writer that commits while this reads removes the old shards under it; the read then starts again
    from the new card (up to ``attempts`` times), so it returns the complete old or new set. A config
    rewritten in place is read afresh, not from ``datasets``' cache of the folder's name.

    Raises:
        ConfigError: the card does not list ``config``.
        CorruptFileError: the card or a file of the config is broken (named).
        FormatError: ``datasets`` cannot read the config for another reason.
    """
    from datasets import load_dataset

    folder = Path(folder)
    for attempt in range(1, attempts + 1):
        stamp = _card_stamp(folder)
        card = read_card(folder)
        names = [e["config_name"] for e in card_entries(card)]
        if names and config not in names:
            raise ConfigError(f"{folder} has no config {config!r}; it has {names}")
        try:
            check_files(folder, card, [config])
            dataset = load_dataset(
                str(folder), config, download_mode="force_redownload", verification_mode="no_checks"
            )
        except Exception as err:
            if attempt < attempts and _card_stamp(folder) != stamp:
                logger.debug("%s changed while config %r was read; reading it again", folder, config)
                continue
            if isinstance(err, CorruptFileError):
                raise
            message = " ".join(str(err).split())[:300]
            raise find_unreadable(folder, card, config) or FormatError(
                f"could not load config {config!r} of {folder}: {type(err).__name__}: {message}"
            ) from err
        return dataset, card
    raise AssertionError("unreachable")  # the last attempt returns or raises


# -------------------------------------------------------------------------------------------- writing


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


def _journal(stage: Path) -> list[str]:
    """The files (relative to the folder) a write listed as moving in, before it moved them."""
    try:
        files = json.loads((stage / JOURNAL).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:  # a journal is written whole; this one is not ours
        logger.warning("Ignoring the unreadable staging journal %s: %s", stage / JOURNAL, err)
        return []
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


def uncommitted(folder: Path) -> set[str]:
    """Shards that writes moved (or are moving) into ``folder`` without a card listing them yet."""
    root = folder / STAGING
    if not root.is_dir():
        return set()
    return {rel for entry in root.iterdir() if entry.is_dir() for rel in _journal(entry)}


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
        for rel in _journal(entry):
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
                (stage / JOURNAL).unlink()  # committed: the card names them now
            except BaseException:
                for path in added:  # the card never listed them: take them away again
                    path.unlink(missing_ok=True)
                raise
            _checkpoint("card")
            remove_unlisted(folder, new_card)
            _checkpoint("cleaned")
    finally:
        remove_path(stage)
        with contextlib.suppress(OSError):  # not empty: another writer is staging
            (folder / STAGING).rmdir()
    return paths


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
        if not listed or any(_GLOB.search(p) or not p.startswith(f"{name}/") for p in listed):
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
