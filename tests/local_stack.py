"""The local stack (`python -m infra.local`) in a subprocess, for the e2e and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.client import Reply, call

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_local_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Start the runner on free ports, stop it when the requesting scope ends; returns its URL."""
    port, moto_port, oidc_port = free_port(), free_port(), free_port()
    log_path = tmp_path_factory.mktemp("local-stack") / "runner.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed by the finalizer; a file, as a full pipe would block
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local", "--port", str(port), "--moto-port", str(moto_port),
         "--oidc-port", str(oidc_port),
         "--schedule-seconds", "3600"],
        cwd=ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def stop() -> None:
        if process.poll() is None:
            process.terminate()  # SIGTERM: the runner shuts down cleanly
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log_file.close()

    request.addfinalizer(stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    health: Reply | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"runner exited with {process.returncode}:\n{log_tail(log_path)}")
        try:
            health = call(url, "GET", "/_local/health")
        except OSError:
            health = None
        if health is not None and health.status == 200:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"runner not ready after {STARTUP_SECONDS}s:\n{log_tail(log_path)}")
    assert health.body["demo"] == "loaded", f"{health.body}\n{log_tail(log_path)}"
    return url
