"""Saving and loading curated preference sets in the layout of a Hub dataset repo.

A curated set is one config per selection strategy, each with its splits as parquet files under
``<config>/<split>-00000-of-00001-<digest>.parquet``, and a README dataset card (see
:mod:`real_hub.hub.dataset_card`) whose YAML lists every config, so ``load_dataset(repo_or_folder, config)``
loads any of them. Pairs are written in TRL's preference format, standard (all strings) or conversational
(the prompt a list of messages, ``chosen``/``rejected`` each a list holding the assistant message), never a
mix, so TRL's ``DPOTrainer`` and ``RewardTrainer`` take the loaded set as it is.
:func:`save_curated` writes that layout to a folder, :func:`push_curated` to a Hub dataset repo (one
commit per config), and :func:`load_curated` reads a config back from either.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset
from huggingface_hub import DatasetCard

from ..atomic import atomic_path
from ..convert import to_trl, trl_format
from ..errors import ConfigError, FormatError, hub_errors, option
from .commit import write_config
from .dataset_card import Provenance, Statistics, build_card, read_metadata
from .folder import card_entries, listed_files, load_config, parse_card, read_card

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class CuratedSet:
    """A loaded curated config: its splits and how it was made."""

    config: str
    dataset: DatasetDict
    provenance: Provenance
    statistics: Statistics


def _as_dict(data: Dataset | DatasetDict) -> DatasetDict:
    if isinstance(data, DatasetDict):
        return data
    if isinstance(data, Dataset):
        return DatasetDict({"train": data})
    raise FormatError(f"expected a datasets.Dataset or DatasetDict, got {type(data).__name__}")


def as_trl(data: Dataset | DatasetDict) -> DatasetDict:
    """The splits of ``data`` in TRL's preference format, one format for all splits.

    Pairs whose prompt is a list of messages get ``chosen``/``rejected`` as one assistant message each
    (:func:`real_hub.to_trl`); when one split is conversational, plain splits become conversational too.
    Splits without ``prompt``/``chosen``/``rejected`` are left as they are.
    """
    splits = _as_dict(data)
    pairs = [s for s, ds in splits.items() if {"prompt", "chosen", "rejected"} <= set(ds.column_names)]
    out = {s: to_trl(ds) if s in pairs else ds for s, ds in splits.items()}
    if any(trl_format(out[s].features) == "conversational" for s in pairs):
        out.update({s: to_trl(out[s], conversational=True) for s in pairs})
    return DatasetDict(out)


def _check_name(kind: str, name: object) -> None:
    if not isinstance(name, str):
        raise ConfigError(
            f"the {kind} name must be a string (letters, digits, '_', '-' or '.'), got {type(name).__name__} "
            f"{name!r}" + ("; save one config per call" if isinstance(name, (list, tuple)) else "")
        )
    if not _NAME.match(name):
        raise ConfigError(f"{kind} name {name!r} must be letters, digits, '_', '-' or '.'")


def write_config_files(data: Dataset | DatasetDict, folder: Path, config: str) -> dict[str, str]:
    """Write each split of ``data`` as parquet under ``folder/<config>/``; return split -> file path.

    File names end in a digest of their bytes, and the card lists them exactly. ``datasets`` caches a
    folder's config under the folder's base name and a hash of the card's ``data_files``, so with fixed
    names two folders called ``out`` (or one config rewritten in place) would share one stale cache; and
    a rewritten config's new shards can sit beside the old ones until the card points at them.
    """
    splits = _as_dict(data)
    _check_name("config", config)
    target = folder / config
    target.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, ds in splits.items():
        _check_name("split", split)
        staged = target / f"{split}.parquet"
        with atomic_path(staged) as tmp:
            ds.to_parquet(str(tmp))
        name = f"{split}-00000-of-00001-{_digest(staged)}.parquet"
        os.replace(staged, target / name)
        paths[split] = f"{config}/{name}"
    return paths


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def existing_card(folder: Path) -> DatasetCard | None:
    """The card in ``folder`` if there is one (a broken card raises :class:`CorruptFileError` naming it)."""
    return read_card(folder)


def card_configs(card: DatasetCard | None) -> list[str]:
    """Config names a card lists."""
    return [c["config_name"] for c in card_entries(card)]


def save_curated(
    data: Dataset | DatasetDict,
    folder: str | Path,
    config_name: str = "default",
    *,
    provenance: Provenance | None = None,
    statistics: Statistics | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``data`` as config ``config_name`` of a Hub-style dataset folder, with its card.

    Pairs are written in TRL's preference format (see :func:`as_trl`). Configs already in the folder are
    kept; writing one that exists needs ``overwrite=True``. The write is one commit: a reader (or a
    process killed halfway) sees the folder's complete old or complete new state, never a mix
    (:mod:`real_hub.hub.commit`).

    Raises:
        OutputError: the folder cannot be written (no permission, read-only, no space left); it is left
            as it was.
        CorruptFileError: the folder's ``README.md`` cannot be parsed (``real-hub repair`` rebuilds it).
    """
    _check_name("config", config_name)
    folder = Path(folder)
    splits = as_trl(data)

    def card_for(existing: DatasetCard | None, paths: dict[str, str]) -> DatasetCard:
        prov, stats = provenance or Provenance(), statistics or Statistics()
        return build_card(str(folder), config_name, paths, prov, stats, existing=existing)

    patterns = write_config(
        folder,
        config_name,
        lambda root: write_config_files(splits, root, config_name),
        card_for,
        overwrite=overwrite,
    )
    logger.info("Saved config %r (%s) to %s", config_name, ", ".join(patterns), folder)
    return folder


def load_curated(repo_id_or_folder: str | Path, config: str) -> CuratedSet:
    """Load one config of a curated set (local folder or Hub repo) with its provenance and statistics.

    The pairs come back in TRL's preference format, as written; a set written before real-hub wrote that
    format (message prompts with string responses) is converted on load.
    """
    _check_name("config", config)
    path = Path(repo_id_or_folder)
    if path.exists():
        dataset, card = load_config(path, config)
    else:
        from huggingface_hub import hf_hub_download

        readme = hf_hub_download(str(repo_id_or_folder), "README.md", repo_type="dataset")
        card = parse_card(Path(readme), f"README.md of dataset repo {repo_id_or_folder}")
        names = card_configs(card)
        if names and config not in names:
            raise ConfigError(f"{repo_id_or_folder} has no config {config!r}; it has {names}")
        dataset = load_dataset(str(repo_id_or_folder), config)
    provenance, statistics = read_metadata(card, config) if card else (Provenance(), Statistics())
    return CuratedSet(config, as_trl(dataset), provenance, statistics)


def push_curated(
    data: Dataset | DatasetDict,
    repo_id: str,
    config_name: str = "default",
    *,
    provenance: Provenance | None = None,
    statistics: Statistics | None = None,
    private: bool = False,
    overwrite: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Push ``data`` as config ``config_name`` of the Hub dataset repo ``repo_id``; return the commit URL.

    Pairs are pushed in TRL's preference format (see :func:`as_trl`). The repo is created if needed
    (``private`` applies to a new repo only). The parquet files and the
    card (the repo's card merged with this config's section, so other configs are kept) go up in one
    commit. A config the repo already has needs ``overwrite=True``; its old files are then deleted in the
    same commit. Hub failures raise :class:`HubError` with a message that never contains the token.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
    from huggingface_hub.utils import get_token, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise ConfigError(f"repo_id {repo_id!r} is not a Hub repo id ('namespace/name'): {err}") from None
    _check_name("config", config_name)
    splits = as_trl(data)
    api = HfApi(token=token)
    secret = token or get_token()
    what = f"pushing config {config_name!r} to dataset repo {repo_id} on {api.endpoint} failed"
    with hub_errors(what, repo_id=repo_id, secret=secret):
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.repo_info(repo_id, repo_type="dataset")
        if private and not info.private:
            logger.warning(
                "Dataset repo %s already exists and is public; private=True does not change it", repo_id
            )
        files = {s.rfilename for s in info.siblings or []}
        card = None
        if "README.md" in files:
            readme = hf_hub_download(
                repo_id, "README.md", repo_type="dataset", revision=info.sha, token=token
            )
            card = parse_card(Path(readme), f"README.md of dataset repo {repo_id}")
        if config_name in card_configs(card) and not overwrite:
            raise ConfigError(
                f"config {config_name!r} already exists in dataset repo {repo_id}; "
                f"pass {option('overwrite', True)} to replace it"
            )
        with tempfile.TemporaryDirectory(prefix="real-hub-push-") as tmp:
            paths = write_config_files(splits, Path(tmp), config_name)
            new_card = build_card(
                repo_id,
                config_name,
                paths,
                provenance or Provenance(),
                statistics or Statistics(),
                existing=card,
            )
            old = _config_files(card, config_name, files) - set(paths.values())
            operations: list[CommitOperationAdd | CommitOperationDelete] = [
                CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(Path(tmp) / p)) for p in paths.values()
            ]
            operations.append(
                CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(new_card).encode())
            )
            operations += [CommitOperationDelete(path_in_repo=p) for p in sorted(old)]
            logger.debug("Commit to %s: add %s, delete %s", repo_id, sorted(paths.values()), sorted(old))
            commit = api.create_commit(
                repo_id,
                operations,
                commit_message=commit_message or f"Add config {config_name} (real-hub)",
                repo_type="dataset",
                parent_commit=info.sha,
            )
    logger.info("Pushed config %r (%s) to dataset repo %s", config_name, ", ".join(paths), repo_id)
    return str(commit.commit_url)


def _config_files(card: DatasetCard | None, config: str, files: set[str]) -> set[str]:
    """Files of the repo that belong to ``config``: those under ``<config>/`` and those its card names."""
    own = {f for f in files if f.startswith(f"{config}/")}
    for pattern in listed_files(card, config):
        own |= {f for f in files if _glob(pattern).fullmatch(f)}
    return own


def _glob(pattern: str) -> re.Pattern[str]:
    """A card's ``data_files`` pattern as a regex: ``*`` and ``?`` stay within a folder, ``**`` does not."""
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    wild = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(p, re.escape(p)) for p in parts))
