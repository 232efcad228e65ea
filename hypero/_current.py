"""``hypero.current()``: the hex of the trial this process runs."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING

from hypero import config
from hypero.errors import ConfigError

if TYPE_CHECKING:
    from hypero.experiment import Experiment

_hex: Experiment | None = None


def set_current(hex: Experiment | None) -> None:
    global _hex
    _hex = hex


def current() -> Experiment:
    """The hex of the running trial: a trial function's own, or, in a ``program:`` trial, the
    one named by ``HYPERO_HEX_ID`` (its writes fenced by ``HYPERO_ATTEMPT``).

    Raises :class:`hypero.ConfigError` outside a trial.
    """
    global _hex
    if _hex is None:
        found = config.trial_env()
        if found is None:
            raise ConfigError("hypero.current(): this process is not running a trial "
                                     "(HYPERO_HEX_ID is not set)")
        from hypero.connection import connect

        hex_id, attempt = found
        _hex = connect().experiment(hex_id, attempt=attempt)
        _exit_on_sigterm()
    return _hex


def _exit_on_sigterm() -> None:
    """A stopped ``program:`` trial gets SIGTERM: exit through ``SystemExit``, so that what it
    logged and hypero still buffers is written (at exit) before the process ends."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
