"""``curate(..., engine="ray")``: the per-row steps of the pipeline on Ray Data, the global ones exact.

The source files (JSON/JSON Lines, optionally compressed, or Parquet; local paths, globs or fsspec URLs)
are read by Ray read tasks, one per file, in chunks numbered with the row's position in the whole source
(the index ``Dataset.map`` would pass, so ``source_id`` and error messages are the default engine's).
Conversion, embedding (one model per actor), Dr.SoW rewards (one pair of models per actor), pair
similarity and per-prompt selection run on the cluster with the very processors ``Dataset.map`` uses.
The models get the batches ``Dataset.map`` gives them (the kept rows re-blocked to ``batch_size``), so
their outputs are equal to the bit. The rows stream back to a memory-mapped Arrow file on the driver's
disk in source order, without embeddings unless asked for (:func:`collect`), and the global
steps (the budget's threshold over the whole dataset, labelling, skip counts) run there with the default
engine's own functions, so the kept pairs, their order and every statistic are the same.

Ray is imported only here, and only when this engine runs; without it, :func:`require_ray` says how to
install the extra.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import errors
from ..convert.dataset import ConversionPlan, conversion_plan
from ..convert.detect import PAIR_SOURCES, detect_source
from ..convert.report import ConversionReport
from ..errors import ClusterError, ConfigError, FormatError, RealHubError, RowError
from ..options import (
    CurateOptions,
    StepTimer,
    embed_arguments,
    reward_arguments,
    selection_strategy,
    selector_arguments,
)
from ..schema import EMBEDDING_COLUMNS, NOTES, SKIP
from .files import INDEX_COLUMN, count_rows, locate_row, numbered_chunks, offsets_of, resolve_files, to_pydict

if TYPE_CHECKING:
    from datasets import Dataset

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
    resources = ray.cluster_resources()
    logger.info(
        "Ray: %s, %d CPUs, %d GPUs",
        f"joined the cluster at {address}" if address not in (None, "local") else "started on this machine",
        resources.get("CPU", 0),
        resources.get("GPU", 0),
    )


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
    rows: Dataset | None = None


def run_on_ray(source: str | Sequence[str], opts: CurateOptions) -> RayRun:
    """Read, convert, embed, (reward), score or select on Ray; the rows come back as a disk-backed Dataset.

    Rows come back in source order, with a ``skip_reason`` column from :class:`~real_hub.SelectPairs` for
    candidates.
    """
    from ..real.embed import EmbedResponses
    from ..real.select import PairSimilarity, SelectPairs

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
    timer = StepTimer()
    lap = timer.lap

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
    model_step = {
        "batch_size": chunk,
        "batch_format": "pyarrow",
        "compute": ray.data.ActorPoolStrategy(size=actors),
        "num_gpus": gpus,
    }
    data = model_batches(read.map_batches(convert.kept, batch_format="pyarrow", batch_size=None), chunk)
    data = data.map_batches(EmbedResponses, fn_constructor_kwargs=embed_arguments(opts), **model_step)
    reward = reward_arguments(opts)
    if reward is not None:
        from ..drsow.reward import DensityRatioReward

        data = data.map_batches(DensityRatioReward, fn_constructor_kwargs=reward, **model_step)
    if shape == "pairs":
        data = data.map_batches(PairSimilarity(), batch_size=chunk, batch_format="pyarrow")
    else:
        strategy = selection_strategy(opts, "candidates")
        selector = SelectPairs(strategy, keep_skipped=True, **selector_arguments(opts))
        data = data.map_batches(selector, batch_size=chunk, batch_format="pyarrow")
    drop = () if opts.keep_embeddings else EMBEDDING_COLUMNS
    with user_errors():
        rows = collect(data, drop=drop, description=f"rows from {', '.join(files[:3])}")
    if rows is None:
        raise FormatError(f"no rows left after converting {', '.join(files)} (skipped: {dict(skipped)})")
    lap("ray")
    return RayRun(kind, shape, conversion, files, timer.seconds, rows)


def model_batches(data: Any, batch_size: int) -> Any:
    """``data`` in blocks of exactly ``batch_size`` rows (the last one may be short), in order.

    ``map_batches(..., batch_size=batch_size)`` then gives a model the batches ``Dataset.map`` gives it
    (rows ``0..B-1``, ``B..2B-1``, ...). That matters: a text's embedding (or log-probability) depends, in
    its last bits, on the other texts padded into its batch, and Ray's own blocks follow the source's
    chunks less their skipped rows. Equal batches make both engines' similarities, budget cut and card
    statistics equal to the bit.
    """
    return data.repartition(target_num_rows_per_block=batch_size, strict=True)


def collect(
    data: Any,
    *,
    drop: Sequence[str] = (),
    directory: str | os.PathLike[str] | None = None,
    description: str = "rows",
) -> Dataset | None:
    """A Ray dataset's rows as a ``datasets.Dataset`` backed by one Arrow file on the driver's disk.

    The rows stream to the file block by block (the columns in ``drop`` are dropped on the cluster,
    before they travel), so the driver's memory does not grow with the data: the result is memory-mapped
    as the default engine's datasets are. Rows keep the order of :data:`INDEX_COLUMN` when the dataset
    has it (Ray preserves order when asked; if blocks still arrive out of order they are sorted, stably),
    and that column is removed. ``directory`` (default: a temporary folder removed when Python exits)
    also receives the cache files of later ``map`` calls. ``None`` when there are no rows.
    """
    from datasets import Dataset

    if drop:
        data = data.map_batches(
            functools.partial(_drop_columns, columns=tuple(drop)), batch_format="pyarrow", batch_size=None
        )
    folder = Path(directory) if directory is not None else _scratch_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ray-rows-{uuid.uuid4().hex}.arrow"
    writer: pa.RecordBatchStreamWriter | None = None
    ordered, last = True, -1
    try:
        for table in data.iter_batches(batch_format="pyarrow", batch_size=None):
            if table.num_rows == 0:
                continue
            if writer is None:
                schema = table.schema
                writer = pa.ipc.new_stream(str(path), schema)
            elif table.schema != schema:
                table = _conform(table, schema, description)
            if INDEX_COLUMN in table.column_names and ordered:
                index = table.column(INDEX_COLUMN).to_numpy()
                ordered = bool(index[0] >= last and (len(index) < 2 or (index[1:] >= index[:-1]).all()))
                last = int(index[-1])
            for batch in table.to_batches():
                writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        path.unlink(missing_ok=True)
        return None
    rows = Dataset.from_file(str(path))
    if INDEX_COLUMN not in rows.column_names:
        return rows
    if not ordered:
        logger.info("Ray returned blocks out of order: sorting %d rows by their source row", len(rows))
        rows = rows.sort(INDEX_COLUMN)  # stable: the pairs of one prompt keep their order
    return rows.remove_columns(INDEX_COLUMN)


def _drop_columns(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    return table.drop_columns([c for c in columns if c in table.column_names])


def _conform(table: pa.Table, schema: pa.Schema, description: str) -> pa.Table:
    """``table`` with the columns and types of the first block (Ray may infer a block's types alone)."""
    if set(table.column_names) != set(schema.names):
        raise FormatError(
            f"{description}: a block has columns {table.column_names}, the first had {schema.names}"
        )
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise FormatError(f"{description}: a block's types do not match the first block's: {err}") from None


@functools.cache
def _scratch_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="real-hub-ray-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _schema(path: str, data_format: str) -> pa.Schema:
    from .files import read_table

    return read_table(path, data_format).schema


__all__ = ["RAY_EXTRA", "collect", "connect", "model_batches", "require_ray", "run_on_ray", "user_errors"]
