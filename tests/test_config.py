"""Settings read from the environment (hypero/config.py)."""

from __future__ import annotations

import pytest
from celery import Celery

from hypero import config
from hypero.errors import ConfigError
from hypero.tasks import configure


def test_visibility_timeout_defaults_to_30_days_and_env_overrides_it() -> None:
    assert config.from_env(env={}).visibility_timeout == 30 * 24 * 3600
    assert config.from_env(env={"HYPERO_VISIBILITY_TIMEOUT": "2.5"}).visibility_timeout == 2.5
    for bad in ("soon", "0", "-1"):
        with pytest.raises(ConfigError, match="HYPERO_VISIBILITY_TIMEOUT"):
            config.from_env(env={"HYPERO_VISIBILITY_TIMEOUT": bad})


def test_configure_gives_redis_the_visibility_timeout() -> None:
    settings = config.Settings(broker="redis://127.0.0.1:1/0", visibility_timeout=7.0)
    celery = configure(Celery("vt"), settings)
    assert celery.conf.broker_transport_options["visibility_timeout"] == 7.0
    default = configure(Celery("vt"), config.Settings(broker="redis://127.0.0.1:1/0"))
    assert default.conf.broker_transport_options["visibility_timeout"] == 30 * 24 * 3600
