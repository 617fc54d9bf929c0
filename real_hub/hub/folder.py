"""A curated set's folder on local disk, read: its card and shards checked, errors naming the broken file.

:func:`read_card` names a card whose YAML does not parse (and the line), a card cut short, an empty card
beside shards; :func:`check_files` a shard that is missing, empty, truncated or not parquet;
:func:`load_config` reads a config as ``load_dataset`` does, again from the new card if a commit swaps it
meanwhile. How a config is written (staging, journal, card swap) is :mod:`real_hub.hub.commit`;
:func:`real_hub.repair_card` rebuilds a broken card from the shards on disk.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard

from ..errors import ConfigError, CorruptFileError, FormatError, option

logger = logging.getLogger(__name__)

README = "README.md"
STAGING = ".real-hub-tmp"
"""The folder inside an output folder where a write stages its shards (hidden from ``datasets``)."""
JOURNAL = "moving.json"
"""In a write's staging folder: the shards it moves into the folder, written before it moves them."""
SHARD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*?-\d{5}-of-\d{5}(-[0-9a-f]{16})?\.parquet$")
"""The name of a shard real-hub writes: ``<split>-00000-of-00001-<digest>.parquet``."""
_HEADER = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
WILDCARD = re.compile(r"[*?\[]")
REPAIR_HINT = "run `real-hub repair {folder}` (or real_hub.repair_card) to rebuild it from the shards on disk"


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
            if WILDCARD.search(rel):
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
        if WILDCARD.search(rel) or not rel.endswith(".parquet"):
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


# ----------------------------------------------------------------------------------- staging journals


def journal(stage: Path) -> list[str]:
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
    return {rel for entry in root.iterdir() if entry.is_dir() for rel in journal(entry)}
