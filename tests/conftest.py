"""Shared fixtures: the real sample video (fetched the user's way if needed), free ports, a real RTSP server."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_VTEST = REPO.parent / "shared" / "data" / "vtest.avi"
SERVER_SCRIPT = Path(__file__).parent / "sources" / "rtsp_server.py"


@pytest.fixture(scope="session")
def vtest_path() -> Path:
    """vtest.avi (768x576, 10 fps, 795 frames): the workplace copy if present, else fetched."""
    if SHARED_VTEST.is_file():
        os.environ.setdefault("RVA_SAMPLE_VIDEO", str(SHARED_VTEST))
        return SHARED_VTEST
    from rva.assets import sample_video

    return sample_video()


@pytest.fixture
def free_port() -> Callable[[], int]:
    """``free_port()``: a TCP port nobody listens on right now."""
    return _free_port


def _free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



class RtspServer:
    """tests/sources/rtsp_server.py in a subprocess: start, kill, pause and resume it for real."""

    def __init__(self, video: Path, port: int) -> None:
        self.video = video
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self, timeout: float = 20.0) -> None:
        cmd = [sys.executable, str(SERVER_SCRIPT), "--port", str(self.port), "--video", str(self.video)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("READY"):
            self.kill()
            raise RuntimeError(f"RTSP server did not start within {timeout} s (said {line!r})")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process must be able to die
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def rtsp_server(vtest_path: Path) -> Iterator[RtspServer]:
    server = RtspServer(vtest_path, _free_port())
    server.start()
    yield server
    server.kill()




@pytest.fixture(scope="session")
def chdb_driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """chdb allows one data path per process: one session-wide driver for every test package
    (stores, gateway), a database per test."""
    from rva.stores.clickhouse import ChdbDriver

    driver = ChdbDriver(str(tmp_path_factory.mktemp("chdb")))
    yield driver
    driver.close()
