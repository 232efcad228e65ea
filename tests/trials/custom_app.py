"""A user's own Celery app whose tasks record into hypero (run by ``celery -A`` in the tests).

The broker and queue come from ``CUSTOM_BROKER`` and ``CUSTOM_QUEUE``; the store from
``HYPERO_DB``/``HYPERO_SCHEMA``, as ``hypero.connect()`` reads them.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

import hypero

app = Celery("custom_app", broker=os.environ.get("CUSTOM_BROKER"))
app.conf.update(
    task_serializer="json", accept_content=["json"], task_ignore_result=True,
    task_default_queue=os.environ.get("CUSTOM_QUEUE", "custom"), worker_hijack_root_logger=False,
)


@app.task(name="custom.direct")
def direct(x: float) -> int:
    """The hex API called directly from a task."""
    with hypero.connect() as conn:
        with conn.battery("custom direct", "v1").experiment() as hex:
            hex.hyper_param("x", x)
            hex.log(step=0, y=x)
            hex.set_result({"y": 2 * x})
            hex.set_meta({"pid": os.getpid()})
    return hex.id


@app.task(name="custom.decorated")
@hypero.trial("custom decorated", "v1")
def decorated(hex: Any, x: float, scale: float = 3.0) -> dict[str, float]:
    """A task handed a ready hex by ``hypero.trial``."""
    hex.hyper_param("x", x)
    hex.uniform("noise", 0.0, 1.0)
    hex.log(step=0, y=x)
    if x < 0:
        raise ValueError(f"negative x: {x}")
    return {"y": scale * x}
