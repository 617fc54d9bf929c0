"""``curate(..., engine="ray")``: the per-row steps of the pipeline on Ray Data, the global ones exact.

The source files (JSON/JSON Lines, optionally compressed, or Parquet; local paths, globs or fsspec URLs)
are read by Ray read tasks, one per file, in chunks numbered with the row's position in the whole source
(the index ``Dataset.map`` would pass, so ``source_id`` and error messages are the default engine's).
Conversion, embedding (one model per actor), Dr.SoW rewards (one pair of models per actor), pair
similarity and per-prompt selection run on the cluster with the very processors ``Dataset.map`` uses.
The rows come back to the driver in source order, without embeddings unless asked for, and the global
steps (the budget's threshold over the whole dataset, labelling, skip counts) run there with the default
engine's own functions, so the kept pairs, their order and every statistic are the same.

Ray is imported only here, and only when this engine runs; without it, :func:`require_ray` says how to
install the extra.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import errors
from ..convert.dataset import ConversionPlan, conversion_plan
from ..convert.detect import PAIR_SOURCES, detect_source
from ..convert.report import ConversionReport
from ..errors import ClusterError, ConfigError, FormatError, RealHubError, RowError
from ..schema import NOTES, SKIP
from .files import INDEX_COLUMN, count_rows, locate_row, numbered_chunks, offsets_of, resolve_files, to_pydict

logger = logging.getLogger(__name__)

RAY_EXTRA = "pip install 'real-hub[ray]'"
#: Seconds to wait for a cluster's address to answer before giving up.
CONNECT_TIMEOUT = 10.0


def require_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` that says how to install the extra."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(f"engine='ray' needs Ray Data, which is not installed: {RAY_EXTRA}") from None
    return ray


def connect(address: str | None = None, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """Join the Ray cluster at ``address`` (default ``RAY_ADDRESS``), or start one on this machine.

    An address that does not answer within ``timeout`` seconds is a :class:`ClusterError`; so is any
    failure to start or join.
    """
    ray = require_ray()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address not in (None, "local", "auto"):
        _probe(address, timeout)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as err:  # Ray raises many types here: one line naming the address
        where = address or "this machine"
        raise ClusterError(f"cannot start or join Ray at {where}: {_one_line(err)}") from None


def _probe(address: str, timeout: float) -> None:
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(
            f"Ray address {address!r} is not host:port, ray://host:port, 'auto' or 'local' "
            "(check RAY_ADDRESS or --ray-address)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ClusterError(
            f"cannot reach the Ray cluster at {address}: {err.strerror or err} "
            "(check RAY_ADDRESS or --ray-address)"
        ) from None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:300] + ("..." if len(text) > 300 else "")


def _user_error(err: BaseException) -> RealHubError | None:
    """The real-hub error behind a Ray failure (Ray wraps a task's exception, maybe twice)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [err]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        cause = getattr(e, "cause", None)
        if isinstance(e, RealHubError) and not isinstance(cause, BaseException):
            if isinstance(e, RowError):
                return RowError(e.reason, row=e.row, column=e.column, file=e.file)
            return e
        stack += [cause if isinstance(cause, BaseException) else None, e.__cause__, e.__context__]
    # Ray sends a task's failure as text when the exception is wrapped: find "real_hub.errors.X: message"
    match = re.search(r"real_hub\.errors\.(\w+): (.+)", str(err))
    if match:
        kind = getattr(errors, match.group(1), None)
        if isinstance(kind, type) and issubclass(kind, RealHubError) and kind is not RowError:
            return kind(match.group(2).strip())
        return RealHubError(match.group(2).strip())
    return None


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Re-raise a real-hub error from inside Ray as itself (one line for the CLI), not Ray's wrapper."""
    try:
        yield
    except RealHubError:
        raise
    except Exception as err:
        found = _user_error(err)
        if found is None:
            raise
        raise found from None


# ---------------------------------------------------------------------------------------------- reading

STATS_SCHEMA = pa.schema(
    [
        ("skipped", pa.string()),
        ("notes", pa.string()),
        ("kept", pa.int64()),
        ("prompts", pa.list_(pa.uint64())),
        ("error", pa.string()),
    ]
)


class NumberedFiles:
    """A Ray Datasource: one read task per file, chunks numbered by their rows' place in the source."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # built on Ray's class only when Ray is there
        from ray.data import Datasource
        from ray.data.block import BlockMetadata
        from ray.data.datasource import ReadTask

        class _NumberedFiles(Datasource):
            def __init__(self, files: Sequence[str], data_format: str, offsets: Sequence[int], rows: int):
                self.files, self.data_format, self.offsets, self.rows = (
                    list(files),
                    data_format,
                    offsets,
                    rows,
                )

            def estimate_inmemory_data_size(self) -> int | None:
                return None

            def get_read_tasks(self, parallelism: int, *args: Any, **kwargs: Any) -> list[Any]:
                tasks = []
                for path, offset in zip(self.files, self.offsets):
                    meta = BlockMetadata(num_rows=None, size_bytes=None, input_files=[path], exec_stats=None)
                    read = functools.partial(numbered_chunks, path, self.data_format, offset, self.rows)
                    tasks.append(ReadTask(read, meta))
                return tasks

        return _NumberedFiles(*args, **kwargs)


@dataclass
class Convert:
    """The converter of a :class:`ConversionPlan` as Ray map functions over numbered Arrow chunks."""

    plan: ConversionPlan
    files: list[str]
    counts: list[int]
    limit: int | None = None

    def rows(self, table: pa.Table) -> pa.Table:
        """Converted rows with their ``_skip`` (and ``_notes``) marks and the row index."""
        if self.limit is not None:
            table = table.filter(pc.less(table.column(INDEX_COLUMN), self.limit))
        index = table.column(INDEX_COLUMN).to_pylist()
        batch = to_pydict(table.drop_columns([INDEX_COLUMN]))
        assert self.plan.fn is not None
        try:
            out = self.plan.fn(batch, index, **self.plan.fn_kwargs)
        except RowError as err:
            raise locate_row(err, self.files, self.counts) from None
        converted = pa.Table.from_pydict(out, schema=self.plan.features.arrow_schema)
        return converted.append_column(INDEX_COLUMN, pa.array(index, type=pa.int64()))

    def stats(self, table: pa.Table) -> pa.Table:
        """One row per chunk: its skip and note counts, kept rows, and hashes of the kept prompts.

        A bad row does not fail the task: its error comes back in the ``error`` column (file, row, column,
        message), so the driver raises it as the default engine does (Ray keeps only a traceback's text).
        """
        try:
            rows = self.rows(table)
        except RowError as err:
            error = json.dumps(
                {"message": err.reason, "row": err.row, "column": err.column, "file": err.file}
            )
            return pa.table(
                {"skipped": ["{}"], "notes": ["{}"], "kept": [0], "prompts": [[]], "error": [error]}
            )
        skips = rows.column(SKIP).to_pylist()
        notes: Counter[str] = Counter()
        if NOTES in rows.column_names:
            for row_notes in rows.column(NOTES).to_pylist():
                notes.update(row_notes or [])
        prompts = [p for p, s in zip(rows.column("prompt").to_pylist(), skips) if s is None]
        hashes = [_prompt_key(p) for p in prompts]
        return pa.table(
            {
                "skipped": [json.dumps(Counter(s for s in skips if s is not None))],
                "notes": [json.dumps(notes)],
                "kept": [len(prompts)],
                "prompts": [hashes],
                "error": [None],
            },
            schema=STATS_SCHEMA,
        )

    def kept(self, table: pa.Table) -> pa.Table:
        """The converted rows that were not skipped, without the marks."""
        rows = self.rows(table)
        rows = rows.filter(pc.is_null(rows.column(SKIP)))
        return rows.drop_columns([c for c in (SKIP, NOTES) if c in rows.column_names])


def _prompt_key(prompt: Any) -> int:
    text = json.dumps(prompt if isinstance(prompt, str) else [[m["role"], m["content"]] for m in prompt])
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class RayRun:
    """What the Ray part of ``curate`` hands back: the processed rows and the conversion's report."""

    kind: str
    shape: str
    conversion: ConversionReport
    files: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    rows: pa.Table | None = None


def run_on_ray(source: str | Sequence[str], opts: Any) -> RayRun:
    """Read, convert, embed, (reward), score or select on Ray; the rows come back as one Arrow table.

    ``opts`` is a :class:`~real_hub.pipeline.CurateOptions`. Rows come back in source order, with a
    ``skip_reason`` column from :class:`~real_hub.SelectPairs` for candidates.
    """
    import time

    from ..real.embed import EmbedResponses
    from ..real.select import PairSimilarity, SelectPairs, resolve_strategy

    if not isinstance(source, (str, list, tuple)):
        raise ConfigError("engine='ray' reads data files (paths, globs or fsspec URLs), not a Dataset object")
    files, data_format = resolve_files(source)
    connect(opts.ray_address)
    ray = require_ray()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    from datasets.utils.tqdm import are_progress_bars_disabled

    context.enable_progress_bars = not are_progress_bars_disabled()
    if are_progress_bars_disabled():  # --quiet: Ray Data's own INFO lines too
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = round(now - clock, 3)
        clock = now

    with user_errors():
        count = ray.remote(count_rows)
        counts = [int(c) for c in ray.get([count.remote(f, data_format) for f in files])]
        first = next(i for i, c in enumerate(counts + [1]) if c > 0)
        if first == len(files):
            raise FormatError(f"no rows in {', '.join(files)}")
        schema = ray.get(ray.remote(_schema).remote(files[first], data_format))
    from datasets import Features

    features = Features.from_arrow_schema(schema)
    kind = detect_source(features) if opts.source_format == "auto" else opts.source_format
    shape = "pairs" if kind in PAIR_SOURCES else "candidates"
    plan = conversion_plan(features, kind, shape)
    if plan.fn is None:
        raise FormatError(
            f"{kind} rows are grouped by post over the whole dataset, which the Ray engine does not do yet: "
            "use the default engine (engine='datasets')"
        )
    rows_in = sum(counts) if opts.limit is None else min(opts.limit, sum(counts))
    convert = Convert(plan, files, counts, opts.limit)
    chunk = max(1, int(opts.batch_size))
    read = ray.data.read_datasource(NumberedFiles(files, data_format, offsets_of(counts), chunk))
    lap("load")

    with user_errors():
        stats = ray.get(read.map_batches(convert.stats, batch_format="pyarrow").to_arrow_refs())
        blocks = pa.concat_tables(stats, promote_options="permissive").cast(STATS_SCHEMA)
    for error in blocks.column("error").to_pylist():
        if error is not None:  # the first bad row in source order, as the default engine stops at it
            e = json.loads(error)
            raise RowError(e["message"], row=e["row"], column=e["column"], file=e["file"])
    skipped: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    for s, n in zip(blocks.column("skipped").to_pylist(), blocks.column("notes").to_pylist()):
        skipped.update(json.loads(s))
        notes.update(json.loads(n))
    prompts = pc.unique(blocks.column("prompts").combine_chunks().flatten()) if len(blocks) else []
    conversion = ConversionReport(
        kind, rows_in, int(sum(blocks.column("kept").to_pylist())), dict(skipped), len(prompts), dict(notes)
    )
    lap("convert")

    actors = max(1, int(opts.num_proc or 1))
    gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
    model_step = {"batch_size": chunk, "batch_format": "pyarrow", "concurrency": actors, "num_gpus": gpus}
    data = read.map_batches(convert.kept, batch_format="pyarrow")
    data = data.map_batches(
        EmbedResponses,
        fn_constructor_kwargs={"model": opts.embedder, "backend": opts.embed_backend},
        **model_step,
    )
    if opts.strong is not None:
        from ..drsow.reward import DensityRatioReward

        reward = {
            "strong": opts.strong,
            "weak": opts.weak,
            "normalize": opts.normalize,
            "domain_routing": opts.domain_routing,
        }
        data = data.map_batches(DensityRatioReward, fn_constructor_kwargs=reward, **model_step)
    if shape == "pairs":
        data = data.map_batches(PairSimilarity(), batch_size=chunk, batch_format="pyarrow")
    else:
        selector = SelectPairs(
            resolve_strategy(opts.strategy),
            pairs_per_prompt=opts.pairs_per_prompt,
            seed=opts.seed,
            scores_column="rewards" if opts.label else "scores",
            keep_skipped=True,
        )
        data = data.map_batches(selector, batch_size=chunk, batch_format="pyarrow")
    embeddings = ("chosen_embedding", "rejected_embedding", "responses_embedding")
    tables = []
    with user_errors():
        for table in data.iter_batches(batch_format="pyarrow", batch_size=None):
            if not opts.keep_embeddings:
                table = table.drop_columns([c for c in embeddings if c in table.column_names])
            tables.append(table)
    if not tables:
        raise FormatError(f"no rows left after converting {', '.join(files)} (skipped: {dict(skipped)})")
    rows = pa.concat_tables(tables, promote_options="permissive")
    order = pc.sort_indices(rows.column(INDEX_COLUMN))  # stable: rows of one prompt keep their order
    rows = rows.take(order).drop_columns([INDEX_COLUMN])
    lap("ray")
    return RayRun(kind, shape, conversion, files, seconds, rows)


def _schema(path: str, data_format: str) -> pa.Schema:
    from .files import read_table

    return read_table(path, data_format).schema


__all__ = ["RAY_EXTRA", "connect", "require_ray", "run_on_ray", "user_errors"]
