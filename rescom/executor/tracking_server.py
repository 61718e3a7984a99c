"""An MLflow tracking server for workers on several machines (a sqlite file on a shared filesystem
is not safe to write from several hosts: its locks do not hold over NFS).

The server runs on the controller's machine over the same sqlite store a sequential run writes
(mlflow.db in the workspace, artifacts beside it), so `rescom runs` / `rescom ui` find every run.
It binds to 127.0.0.1 unless told otherwise; bound beyond it, it runs MLflow's basic-auth app and
needs MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (its admin account, which the workers use too).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rescom.errors import ExpectedError
from rescom.executor.orphan_guard import die_with_parent, guarded

LOOPBACK = "127.0.0.1"
SERVER_GRACE_SECONDS = 15.0  # between SIGTERM and SIGKILL when the controller dies


class TrackingServerError(ExpectedError, RuntimeError):
    """The MLflow server rescom starts cannot start: missing credentials, or it exited or never answered."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_argv(store: Path, host: str, port: int, workers: int = 1, auth: bool | None = None) -> list[str]:
    """`mlflow server` over the sqlite store `store`; with the basic-auth app when `auth`, which is
    forced on when the server is bound beyond loopback."""
    store = store.resolve()
    argv = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port),
            "--backend-store-uri", f"sqlite:///{store}",
            "--artifacts-destination", (store.parent / "mlartifacts").as_uri(), "--workers", str(workers)]
    if auth or not is_loopback(host):
        argv += ["--app-name", "basic-auth"]
    return argv


def auth_environment(store: Path) -> dict[str, str]:
    """The basic-auth app's config (admin from the tracking credentials, its user db beside the store)."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not user or not password:
        raise TrackingServerError("a tracking server bound beyond 127.0.0.1 needs MLFLOW_TRACKING_USERNAME "
                                  "and MLFLOW_TRACKING_PASSWORD (MLflow basic auth)")
    if len(password) < 12:
        raise TrackingServerError("MLFLOW_TRACKING_PASSWORD: MLflow's basic auth needs at least 12 characters")
    config = store.resolve().parent / "mlflow-auth.ini"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = sqlite:///{store.resolve().parent / 'mlflow-auth.db'}\n"
                      f"admin_username = {user}\nadmin_password = {password}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    config.chmod(0o600)
    import secrets

    # The auth app's forms need a CSRF key; one server process, so a fresh random one per start.
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or secrets.token_hex(32)}


@dataclass
class TrackingServer:
    uri: str
    process: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the server's process group (uvicorn and its workers), SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_server(store: Path = Path("mlflow.db"), host: str = LOOPBACK, port: int | None = None,
                 timeout: float = 120.0, auth: bool | None = None) -> TrackingServer:
    """Start `mlflow server` and wait until it answers /health. Workers reach it by `host`, or by
    this machine's name when it is bound to all interfaces."""
    local = LOOPBACK if host == "0.0.0.0" else host
    port = port or free_port(local)
    # Job execution (a job runner and a dozen huey consumers for MLflow's GenAI jobs) is not needed
    # to track runs, and those processes slow the server's start on a busy machine.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    auth = auth or not is_loopback(host)
    if auth:
        env.update(auth_environment(store))
    log_path = store.resolve().parent / "logs" / "mlflow-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        # Under the orphan guard: a controller killed before its `finally` (kill -9, a test's timeout)
        # takes the server with it rather than leaving it listening.
        process = subprocess.Popen(guarded(server_argv(store, host, port, auth=auth), SERVER_GRACE_SECONDS),
                                   env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, preexec_fn=die_with_parent)
    server = TrackingServer(f"http://{socket.gethostname() if host == '0.0.0.0' else host}:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    health = f"http://{local}:{port}/health"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TrackingServerError(f"mlflow server exited ({process.returncode}); see {log_path}")
        try:
            with urllib.request.urlopen(health, timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise TrackingServerError(f"mlflow server did not answer {health} within {timeout:.0f} s; see {log_path}")
