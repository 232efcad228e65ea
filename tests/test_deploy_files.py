"""Deployment files: docker-compose.yml, workers/ (Dockerfile, systemd unit, notes) and .ci/run.

Nothing here starts a container or a unit; the files are validated offline with the tools that
read them (docker-compose, systemd-analyze) where present, and checked for what users rely on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.services import unavailable

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "workers" / "Dockerfile"
UNIT = ROOT / "workers" / "hypero-worker@.service"
GPU_HOSTS = ROOT / "workers" / "GPU_HOSTS.md"
CI_RUN = ROOT / ".ci" / "run"
TEST_COMMANDS = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'",
    ".venv/bin/python -m pytest -q",
)


# -- docker-compose.yml ---------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_is_valid() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        unavailable("docker-compose not installed (Debian package docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYPERO_", "COMPOSE_"))}
    done = subprocess.run(
        [tool, "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "WARN" not in done.stderr, done.stderr


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_worker_waits_for_healthy_services() -> None:
    services = _compose()["services"]
    worker = services["worker"]
    assert worker["build"] == {"context": ".", "dockerfile": "workers/Dockerfile"}
    assert worker["environment"]["HYPERO_BROKER"] == "redis://redis:6379/0"
    assert worker["environment"]["HYPERO_DB"] == (
        "postgresql://hypero:${HYPERO_DB_PASSWORD:-hypero}@postgres:5432/hypero"
    )
    for dependency in ("postgres", "redis"):
        assert worker["depends_on"][dependency] == {"condition": "service_healthy"}
        assert services[dependency]["healthcheck"]["test"]
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]


def test_compose_redis_keeps_queued_trials_across_restarts() -> None:
    command = " ".join(_compose()["services"]["redis"]["command"])
    assert "--appendonly yes" in command


# -- workers/Dockerfile ---------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(p[0].upper(), p[1] if len(p) > 1 else "") for p in pairs]


def test_dockerfile_runs_hypero_worker_as_non_root() -> None:
    steps = _instructions(DOCKERFILE.read_text())
    values = dict(steps)  # the last of each instruction wins, as in Docker
    assert values["FROM"] == "python:3.11-slim"
    assert values["USER"] not in ("root", "0")
    assert values["ENTRYPOINT"] == '["hypero"]'
    assert values["CMD"] == '["worker"]'
    assert any(k == "RUN" and "pip install ." in v for k, v in steps)


def test_dockerfile_copies_only_what_exists() -> None:
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "COPY":
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


# -- workers/hypero-worker@.service ---------------------------------------------------------------


def _unit_entries(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: keys may repeat (Environment=), so each maps to a list."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        else:
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_worker_unit_has_what_a_gpu_host_needs() -> None:
    unit = _unit_entries(UNIT)
    service = unit["Service"]
    (exec_start,) = service["ExecStart"]
    assert re.search(r"/hypero worker .*--gpus %i\b", exec_start), exec_start
    assert "--name hypero-gpu%i@%H" in exec_start
    assert service["EnvironmentFile"] == ["/etc/hypero/worker.env"]
    assert service["Restart"] == ["on-failure"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["KillMode"] == ["mixed"]  # SIGTERM the worker, not its trials directly
    assert service["User"][0] not in ("root", "0")
    timeout = service["TimeoutStopSec"][0]
    assert re.fullmatch(r"\d+(min|h)", timeout), f"TimeoutStopSec={timeout}: too short for trials"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_worker_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        unavailable("systemd-analyze not installed (Debian package systemd)")
    # verify insists that ExecStart's program exists; it is installed at deploy time, so point
    # the copy at a stand-in and verify everything else.
    program = _unit_entries(UNIT)["Service"]["ExecStart"][0].split()[0]
    stand_in = tmp_path / "hypero"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    (tmp_path / UNIT.name).write_text(UNIT.read_text().replace(program, str(stand_in)))
    done = subprocess.run(
        [tool, "verify", str(tmp_path / "hypero-worker@0.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    complaints = [line for line in output.splitlines() if "hypero-worker@" in line]
    assert not complaints, "\n".join(complaints)


def test_gpu_host_notes_cover_setup_and_draining() -> None:
    text = GPU_HOSTS.read_text()
    for needed in (
        "HYPERO_DB",
        "HYPERO_BROKER",
        "HYPERO_CHECKPOINTS",
        "pgpass",
        "nfs",
        "hypero worker --queues gpu --gpus all",
        "cancel_consumer",
        "SIGTERM",
        "lease",
    ):
        assert needed in text, f"GPU_HOSTS.md does not mention {needed}"


# -- .ci/run and the README's test block ----------------------------------------------------------


def test_ci_run_is_executable_bash_running_the_readme_test_block() -> None:
    text = CI_RUN.read_text()
    assert os.access(CI_RUN, os.X_OK)
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert subprocess.run(["bash", "-n", str(CI_RUN)], check=False).returncode == 0
    lines = text.splitlines()
    for command in TEST_COMMANDS:
        assert command in lines, f".ci/run does not run: {command}"


def test_readme_test_block_matches_ci() -> None:
    readme = ROOT / "README.md"
    assert readme.exists(), "README.md is missing"
    lines = readme.read_text().splitlines()
    for command in TEST_COMMANDS:
        assert command in lines, f"README.md should show the test command: {command}"
