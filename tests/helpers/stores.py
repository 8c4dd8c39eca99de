"""Real PostgreSQL and Redis servers for tests of the cluster's Feast config (SQL registry on Postgres,
Redis online store), started from Debian's packages (`make test` installs them), and a real MLflow
tracking server, each stopped afterwards.

The cluster feature_store.yaml fixes the ports (5432, 6379: Feast expands `${VAR}` with
os.path.expandvars, which has no defaults), so each server listens on those ports on an address of its
own in 127.0.0.0/8, which loopback answers in full on Linux: no clash with another server on 127.0.0.1.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.waiting import wait_for


def loopback_address() -> str:
    """An unused-looking address in 127.0.0.0/8 (random: parallel sessions do not collide)."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert found, "PostgreSQL is not installed (make test installs Debian's postgresql)"
    return Path(found[-1]).parent


@contextmanager
def postgres_server(host: str, user: str, password: str, database: str) -> Iterator[None]:
    """PostgreSQL on host:5432 with `user`/`password` (scram-sha-256 over TCP) owning `database`."""
    binaries = _postgres_bin()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root
    folder = Path(tempfile.mkdtemp(prefix="pg-"))
    (folder / "pw").write_text(password)
    if as_postgres:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
    data = folder / "data"
    run = lambda *argv: subprocess.run([*as_postgres, *argv], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(
            str(binaries / "initdb"), "-D", str(data), "-U", user, f"--pwfile={folder / 'pw'}",
            "--auth-host=scram-sha-256", "--auth-local=trust",
        )  # fmt: skip
        options = f"-c listen_addresses={host} -c port=5432 -k {folder} -c fsync=off"
        log = str(folder / "log")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start")
        run(str(binaries / "createdb"), "-h", str(folder), "-p", "5432", "-U", user, database)
        wait_for(lambda: _accepts(host, 5432), f"postgres on {host}:5432", 30)
        yield
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def redis_server(host: str, password: str) -> Iterator[None]:
    """Redis on host:6379 with `password`, nothing persisted."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (make test installs Debian's redis-server)"
    folder = Path(tempfile.mkdtemp(prefix="redis-"))
    server = subprocess.Popen(
        [binary, "--bind", host, "--port", "6379", "--requirepass", password, "--save", "", "--appendonly",
         "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: _accepts(host, 6379) or server.poll() is not None, f"redis on {host}:6379", 30)
        assert server.poll() is None, f"redis-server exited with {server.returncode}"
        yield
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """`mlflow server` (sqlite backend, proxied artifacts under `folder`) on a free loopback port; yields
    its URL, as the cluster's steps reach the MLflow Deployment."""
    import sys

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return server.poll() is not None

    try:
        wait_for(healthy, f"mlflow server on {url}", 60)
        assert server.poll() is None, f"mlflow server exited with {server.returncode}"
        yield url
    finally:
        server.terminate()
        server.wait(20)
