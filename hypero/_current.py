"""``hypero.current()``: the hex of the trial this process runs."""

from __future__ import annotations

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
    return _hex
