"""The OpenAPI 3.1 description of the dashboard's JSON API, served at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any


def _param(name: str, where: str, schema: dict[str, Any], text: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": text}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(ref: str, text: str) -> dict[str, Any]:
    return {
        "200": {"description": text, "content": {"application/json": {"schema": _ref(ref)}}},
        "400": {"$ref": "#/components/responses/BadRequest"},
        "404": {"$ref": "#/components/responses/NotFound"},
    }


def _get(summary: str, ref: str, text: str, *params: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": list(params), "responses": _ok(ref, text)}}


_ID = _param("id", "path", {"type": "integer"}, "The battery's id.")
_INT = {"type": "integer"}
_STR = {"type": "string"}
_KEY = {"type": "string", "pattern": "^(param|result):.+$"}
_STATES = ["queued", "running", "completed", "failed", "pruned", "cancelled"]
_OBJ = {"type": "object", "additionalProperties": True}
_NUM = {"oneOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_COUNTS = {"type": "object", "properties": {s: _INT for s in _STATES}}

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "properties": {"error": _STR}, "required": ["error"]},
    "BatteryList": {"type": "array", "items": {"type": "object", "properties": {
        "id": _INT, "name": _STR, "created_at": _TIME, "versions": _INT, "sweeps": _INT,
        "trials": _INT, "live": {**_INT, "description": "trials queued or running"}}}},
    "Battery": {"type": "object", "properties": {
        "id": _INT, "name": _STR,
        "versions": {"type": "array", "items": {"type": "object", "properties": {
            "id": _INT, "description": _STR, "created_at": _TIME, "trials": _INT}}},
        "metric": {"type": ["object", "null"], "properties": {
            "name": _STR, "goal": {"enum": ["maximize", "minimize"]}}},
        "keys": {"type": "object", "properties": {
            "param": {"type": "array", "items": _STR},
            "result": {"type": "array", "items": _STR}}}}},
    "Sweep": {"type": "object", "properties": {
        "id": _INT, "battery": _STR, "version": _STR, "name": {"type": ["string", "null"]},
        "state": _STR, "total": _INT, "finished": _INT, "counts": _COUNTS,
        "rate": {"type": "number", "description": "trials finished per second, recently"},
        "eta": {"type": ["number", "null"], "description": "seconds until every trial is final"},
        "metric": {"type": ["object", "null"]}, "queue": _STR,
        "depth": {"type": ["integer", "null"], "description": "messages waiting in the queue "
                  "(with --broker)"},
        "workers": {"type": ["array", "null"], "items": _STR,
                    "description": "live workers answering a ping (with --broker)"},
        "best": {"type": ["object", "null"], "properties": {"id": _INT, "value": _NUM}}}},
    "Status": {"type": "object", "properties": {
        "counts": _COUNTS, "total": _INT,
        "sweeps": {"type": "array", "items": _ref("Sweep")}}},
    "TrialRow": {"type": "object", "properties": {
        "id": _INT, "version": _INT, "sweep": {"type": ["integer", "null"]},
        "state": {"enum": _STATES}, "attempt": _INT, "worker": {"type": ["string", "null"]},
        "started_at": _TIME, "finished_at": _TIME, "params": _OBJ, "results": _OBJ}},
    "TrialPage": {"type": "object", "properties": {
        "total": _INT, "offset": _INT, "limit": _INT, "sort": _STR,
        "order": {"enum": ["asc", "desc"]},
        "rows": {"type": "array", "items": _ref("TrialRow")}}},
    "Trial": {"type": "object", "properties": {
        "id": _INT, "battery": _OBJ, "version": _OBJ, "sweep": {"type": ["integer", "null"]},
        "trial_index": {"type": ["integer", "null"]}, "state": {"enum": _STATES},
        "attempt": _INT, "failures": {**_INT, "description": "attempts whose function raised"},
        "worker": {"type": ["string", "null"]}, "cancel_requested": {"type": "boolean"},
        "created_at": _TIME, "started_at": _TIME, "finished_at": _TIME, "heartbeat_at": _TIME,
        "lease_until": _TIME, "error": {"type": ["string", "null"]},
        "params": _OBJ, "results": _OBJ, "meta": _OBJ,
        "metrics": {"type": "array", "items": _STR}}},
    "SweepDetail": {"allOf": [_ref("Sweep"), {"type": "object",
        "properties": {"battery_id": _INT, "created_at": _TIME, "finished_at": _TIME,
                       "spec": _OBJ, "top": {"type": "array", "items": _ref("TrialRow")}}}]},
    "Curves": {"type": "object", "properties": {
        "names": {"type": "array", "items": _STR},
        "curves": {
            "type": "object", "description": "{hex id: {metric name: [[step, value], …]}}",
            "additionalProperties": {"type": "object", "additionalProperties": {
                "type": "array", "items": {"type": "array", "prefixItems": [_NUM, _NUM]}}}}}},
    "Points": {"type": "object", "properties": {
        "x": _STR, "y": _STR, "ids": {"type": "array", "items": _INT},
        "xs": {"type": "array"}, "ys": {"type": "array"}}},
}

SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "hypero dashboard API",
        "version": "1",
        "description": (
            "Read-only JSON over hypero's store. Every route is GET. Non-finite numbers are the "
            "strings \"NaN\", \"Infinity\" and \"-Infinity\". Errors are {\"error\": message} "
            "with status 400 (bad argument), 404 (unknown id or route) or 503 (database)."
        ),
    },
    "paths": {
        "/api/batteries": _get("Every battery with its counts", "BatteryList", "Batteries"),
        "/api/batteries/{id}": _get(
            "A battery: versions, sweep metric, param and result keys", "Battery", "Battery",
            _ID),
        "/api/batteries/{id}/status": _get(
            "Trials by state and each sweep's progress, rate, ETA, best (poll this)", "Status",
            "Status", _ID),
        "/api/batteries/{id}/trials": _get(
            "One page of the battery's trials, filtered and sorted in the database",
            "TrialPage", "A page of trials", _ID,
            _param("sort", "query", _STR,
                   "id, state, attempt, worker, version, sweep, started_at, finished_at, or "
                   "param:KEY / result:KEY; missing and NaN values sort last either way. "
                   "Default: the sweep metric's best first, else id"),
            _param("order", "query", {"enum": ["asc", "desc"]}, "Direction (default: asc, or "
                   "the metric's goal when sort is defaulted)."),
            _param("state", "query", _STR, "Comma-separated states to keep."),
            _param("version", "query", _INT, "Keep this version id only."),
            _param("sweep", "query", _INT, "Keep this sweep id only."),
            _param("offset", "query", {"type": "integer", "minimum": 0, "default": 0}, "Skip."),
            _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500,
                                      "default": 50}, "Page size."),
        ),
        "/api/batteries/{id}/points": _get(
            "Two keys over the battery's completed trials (newest first), for a scatter",
            "Points", "Points", _ID,
            _param("x", "query", _KEY, "param:KEY or result:KEY", required=True),
            _param("y", "query", _KEY, "param:KEY or result:KEY", required=True),
            _param("version", "query", _INT, "Keep this version id only."),
            _param("limit", "query", {"type": "integer", "maximum": 20000, "default": 5000},
                   "At most this many trials."),
        ),
        "/api/sweeps/{id}": _get(
            "A sweep: progress, spec and its best trials by the spec's metric", "SweepDetail",
            "Sweep", _param("id", "path", _INT, "The sweep's id.")),
        "/api/trials/{id}": _get(
            "One trial: state, attempts, params, results, meta, error, curve names", "Trial",
            "Trial", _param("id", "path", _INT, "The trial's (hex) id.")),
        "/api/curves": _get(
            "Streamed curves (hex.log) of up to 50 trials", "Curves", "Curves",
            _param("ids", "query", _STR, "Comma-separated hex ids.", required=True),
            _param("names", "query", _STR, "Comma-separated metric names (default: all)."),
        ),
        "/api/openapi.json": {"get": {"summary": "This description",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    },
    "components": {
        "schemas": _SCHEMAS,
        "responses": {
            "BadRequest": {"description": "A bad argument", "content": {"application/json": {
                "schema": _ref("Error")}}},
            "NotFound": {"description": "Unknown id", "content": {"application/json": {
                "schema": _ref("Error")}}},
        },
    },
}
