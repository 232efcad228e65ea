"""hypero's exceptions, one tree.

    HyperoError
    ├── ConfigError      a setting (DSN, broker URL, schema name, environment) is unusable
    ├── SpecError        a sweep spec is invalid; carries file, line and key
    ├── StorageError     the database refused or failed an operation
    ├── BrokerError      the message broker cannot be reached
    ├── NotFound         a battery, version, experiment or sweep does not exist
    ├── Conflict         a document key is already set and update=False
    └── Pruned           raised inside a trial that was stopped (early termination or cancel)
"""

from __future__ import annotations


class HyperoError(Exception):
    """Base class of every error hypero raises on purpose."""


class ConfigError(HyperoError):
    """Raised when a setting (DSN, broker URL, schema name, environment variable) is unusable."""


class SpecError(HyperoError):
    """Raised when a sweep spec is invalid; names the file, the line and the dotted key."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        prefix = f"{key}: " if key else ""
        super().__init__(f"{where}{prefix}{message}")


class StorageError(HyperoError):
    """Raised when the database refuses or fails an operation (the driver's error is chained)."""


class BrokerError(HyperoError):
    """Raised when the message broker cannot be reached (the driver's error is chained)."""


class NotFound(HyperoError, LookupError):
    """Raised when a battery, version, experiment or sweep does not exist."""


class Conflict(HyperoError):
    """Raised when a document key is already set and ``update=False`` was given."""


class Pruned(HyperoError):
    """Raised inside a trial that was stopped by early termination or cancellation."""
