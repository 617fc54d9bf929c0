"""Typed, user-facing errors.

Every error says what was expected, what was found and, where there is one, the likely fix.
The command line turns any :class:`RealHubError` into one line and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

# ------------------------------------------------------------------------------------- naming options

_FLAGS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "real_hub_flags", default=None
)
_UNSET: Any = object()


def on_command_line() -> bool:
    """Whether the running code was called by the ``real-hub`` command (see :func:`command_line_flags`)."""
    return _FLAGS.get() is not None


def flag(name: str) -> str:
    """Option ``name`` as the user knows it: ``budget`` from Python, ``--budget`` from the command line."""
    flags = _FLAGS.get()
    if flags is None:
        return name
    return flags.get(name, "--" + name.replace("_", "-"))


def option(name: str, value: Any = _UNSET, *, placeholder: bool = False) -> str:
    """How the user sets option ``name`` (to ``value``), for an error's advice.

    From Python: ``overwrite=True``, ``source=``, ``limit=10``; under :func:`command_line_flags` (the
    ``real-hub`` command): ``--overwrite``, ``--format``, ``--limit 10``. A value set to True is the flag
    alone; a ``placeholder`` value (``MODEL``) is shown as it is, not quoted.
    """
    if _FLAGS.get() is None:
        if value is _UNSET:
            return f"{name}="
        return f"{name}={value if placeholder else repr(value)}"
    if value is _UNSET or value is True:
        return flag(name)
    return f"{flag(name)} {value}"


@contextlib.contextmanager
def command_line_flags(flags: Mapping[str, str]) -> Iterator[None]:
    """Within the block, :func:`option` names options by their flags (``flags`` maps names that differ)."""
    token = _FLAGS.set(dict(flags))
    try:
        yield
    finally:
        _FLAGS.reset(token)


class RealHubError(Exception):
    """Base class of every error real-hub raises on purpose."""


class ColumnError(RealHubError, KeyError):
    """A column is missing, misnamed or of the wrong type."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message

    @classmethod
    def missing(cls, wanted: str | Iterable[str], present: Iterable[str], *, hint: str = "") -> ColumnError:
        """Build the error for absent columns, listing the columns that are present."""
        wanted_list = [wanted] if isinstance(wanted, str) else list(wanted)
        names = ", ".join(repr(w) for w in wanted_list)
        found = ", ".join(repr(p) for p in present) or "none"
        msg = f"expected column(s) {names}, but the data has columns [{found}]"
        if hint:
            msg += f". {hint}"
        return cls(msg)


class RowError(RealHubError, ValueError):
    """A row holds a value that cannot be processed (None, empty, wrong type, ragged lists).

    ``file`` names the data file the row came from (``row`` then counts from 0 in that file), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        row: int | str | None = None,
        column: str | None = None,
        file: str | None = None,
    ) -> None:
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
        self.reason = message
        self.row = row
        self.column = column
        self.file = file

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # pickled by its parts (Ray sends errors between processes), not by the formatted message
        return _row_error, (self.reason, self.row, self.column, self.file)


def _row_error(message: str, row: int | str | None, column: str | None, file: str | None) -> RowError:
    return RowError(message, row=row, column=column, file=file)


class ClusterError(RealHubError, ConnectionError):
    """A compute cluster (Ray, at ``RAY_ADDRESS`` or ``--ray-address``) cannot be reached or used."""


class FormatError(RealHubError, ValueError):
    """The data's format (source schema, file type) is unknown or inconsistent."""


class CorruptFileError(FormatError):
    """A file real-hub reads is missing, empty, truncated or not in its format (a shard, a dataset card).

    The message names the file (``file``) and what is wrong with it, and how to repair it where real-hub
    can.
    """

    def __init__(self, message: str, *, file: object = None) -> None:
        super().__init__(message)
        self.file = None if file is None else str(file)


class OutputError(RealHubError, OSError):
    """An output folder or file cannot be written (no permission, read-only, no space left).

    ``folder`` is the output folder; what was there before the write is left as it was.
    """

    def __init__(self, message: str, *, folder: object = None) -> None:
        super().__init__(message)
        self.folder = None if folder is None else str(folder)

    def __str__(self) -> str:  # OSError would format its arguments
        return str(self.args[0]) if self.args else ""


class ModelNotFoundError(RealHubError, OSError):
    """A model cannot be found locally, in a packaged copy, or on the Hub."""


class RemoteCodeError(RealHubError, ValueError):
    """A model needs ``trust_remote_code=True`` and it was not given."""


class ConfigError(RealHubError, ValueError):
    """An option has a value outside what it accepts."""


class MissingExtraError(RealHubError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class HubError(RealHubError):
    """The Hub (or the endpoint in ``HF_ENDPOINT``) refused or could not be reached."""


# ------------------------------------------------------------------------------------------ Hub failures
#
# The one mapping of what the Hub client raises to what a user reads. Every call that talks to the Hub
# (pushing a curated set or a model, loading a source, reading a card, resolving a model) goes through
# :func:`hub_errors` or :func:`is_network_error`.


def network_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the Hub could not be reached (no answer, as opposed to a refusal).

    ``ConnectionError``/``TimeoutError``, offline mode with nothing cached, and the transport errors of the
    HTTP library ``huggingface_hub`` uses (``httpx`` in 1.x, ``httpx2`` in 2.x), where it is loaded.
    """
    found = [getattr(sys.modules[m], "TransportError", None) for m in ("httpx", "httpx2") if m in sys.modules]
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    # offline (HF_HUB_OFFLINE=1) with nothing cached: the Hub was not reached either
    offline = (OfflineModeIsEnabled, LocalEntryNotFoundError)
    return (ConnectionError, TimeoutError, *offline, *(e for e in found if isinstance(e, type)))


def is_network_error(err: BaseException) -> bool:
    """Whether ``err`` means the Hub could not be reached (a network failure, or a 5xx answer)."""
    if isinstance(err, network_errors()):
        return True
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    return isinstance(status, int) and status >= 500


def hub_error(
    err: BaseException, what: str, *, repo_id: str = "", secret: str | None = None
) -> HubError | None:
    """The :class:`HubError` for what the Hub client raised while doing ``what``; None if not a Hub failure.

    The message says why in words (not found, no token, no write access, changed while pushing,
    unreachable) and never contains ``secret`` (the token).
    """
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    if not isinstance(err, (HfHubHTTPError, *network_errors())):
        return None
    text = str(err).strip()
    status = (
        err.response.status_code if isinstance(err, HfHubHTTPError) and err.response is not None else None
    )
    if isinstance(err, RepositoryNotFoundError) or status == 404:
        reason = "the repo was not found, or the token cannot see it"
    elif status == 401:
        reason = "the Hub refused the token" if secret else "no token"
        reason += (
            " (401 Unauthorized); log in with `hf auth login`, set HF_TOKEN or pass token= (write access)"
        )
    elif status == 403:
        reason = f"the token has no write access to {repo_id or 'the repo'} (403 Forbidden)"
    elif status == 412:
        reason = "the repo changed while pushing (412 Precondition Failed); push again"
    elif status is not None:
        reason = text.splitlines()[0] if text else f"HTTP {status}"
    else:
        reason = f"could not reach the Hub ({text or type(err).__name__}); check the network and HF_ENDPOINT"
    if secret:
        reason = reason.replace(secret, "<token>")
    return HubError(f"{what}: {reason}")


@contextlib.contextmanager
def hub_errors(what: str, *, repo_id: str = "", secret: str | None = None) -> Iterator[None]:
    """Turn what the Hub client raises inside the block into :class:`HubError` (see :func:`hub_error`)."""
    try:
        yield
    except Exception as err:
        mapped = hub_error(err, what, repo_id=repo_id, secret=secret)
        if mapped is None:
            raise
        # Keep the client's exception as the cause unless its text holds the token.
        raise mapped from (None if secret and secret in str(err) else err)


__all__ = [
    "ClusterError",
    "ColumnError",
    "ConfigError",
    "CorruptFileError",
    "FormatError",
    "HubError",
    "MissingExtraError",
    "ModelNotFoundError",
    "OutputError",
    "RealHubError",
    "RemoteCodeError",
    "RowError",
]
