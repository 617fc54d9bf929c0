"""Typed, user-facing errors.

Every error says what was expected, what was found and, where there is one, the likely fix.
The command line turns any :class:`RealHubError` into one line and a non-zero exit.
"""

from __future__ import annotations

from collections.abc import Iterable


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
    """A row holds a value that cannot be processed (None, empty, wrong type, ragged lists)."""

    def __init__(self, message: str, *, row: int | str | None = None, column: str | None = None) -> None:
        where = []
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
        self.row = row
        self.column = column


class FormatError(RealHubError, ValueError):
    """The data's format (source schema, file type) is unknown or inconsistent."""


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


__all__ = [
    "ColumnError",
    "ConfigError",
    "FormatError",
    "HubError",
    "MissingExtraError",
    "ModelNotFoundError",
    "RealHubError",
    "RemoteCodeError",
    "RowError",
]
