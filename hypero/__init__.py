"""hypero: distributed hyper-parameter sweeps, recorded exactly in PostgreSQL or SQLite.

The whole public API is imported here; see the README and DESIGN for what each name promises.
"""

from hypero._current import current
from hypero.battery import Battery
from hypero.connection import Connection, connect
from hypero.decorators import trial
from hypero.errors import (
    BrokerError,
    ConfigError,
    Conflict,
    HyperoError,
    NotFound,
    Pruned,
    SpecError,
    StorageError,
)
from hypero.experiment import Experiment

__version__ = "0.1.0"

__all__ = [
    # connecting
    "connect",
    "Connection",
    "current",
    # the hex API
    "Battery",
    "Experiment",
    # a user's own tasks
    "trial",
    # errors
    "HyperoError",
    "ConfigError",
    "SpecError",
    "StorageError",
    "BrokerError",
    "NotFound",
    "Conflict",
    "Pruned",
]
