"""The whole local stack as processes, health-gated start and clean teardown.

nats-server, Triton (when the detector is ``type: triton``), decode, inference, tracking, analytics:
each started once the previous is healthy, stopped in pipeline order (each service drains on
SIGTERM). Used by ``python -m services up``, the tests and ``bench/services.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rva.config import TritonDetectorConfig
from services.common.config import load_service_config
from services.common.servers import ManagedProcess, NatsServer, TritonServer, free_port
from services.inference.triton_repo import prepare_model_repository

SERVICES = ("decode", "inference", "tracking", "analytics")
#: Started too when the config asks for them: alerts with sinks to deliver to, sync with a cloud to reach.
OPTIONAL = ("alerts", "sync")


def services_for(cfg: Any) -> tuple[str, ...]:
    """The services a config runs: the pipeline, plus alerts (``alerts.sinks``) and sync (a ``cloud_url``)."""
    extra = [n for n, wanted in (("alerts", bool(cfg.alerts.sinks)), ("sync", bool(cfg.services.sync.cloud_url)))
             if wanted]
    return (*SERVICES, *extra)


def health_status(addr: str, timeout: float = 2.0) -> str:
    """``SERVING``, ``NOT_SERVING`` or ``UNREACHABLE`` for a gRPC server's overall health."""
    try:
        with grpc.insecure_channel(addr) as channel:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))
    except grpc.RpcError:
        return "UNREACHABLE"


class ServiceProcess(ManagedProcess):
    """``python -m services.<name>`` with its ports in the environment."""

    def __init__(self, name: str, config: Path, env: dict[str, str], port: int, metrics_port: int, log_dir: Path):
        super().__init__(name, log_dir)
        self.config = config
        self.env = env
        self.port = port
        self.metrics_port = metrics_port

    @property
    def addr(self) -> str:
        """``127.0.0.1:<grpc port>``."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        """Start and wait until its health check says SERVING."""
        self._spawn([sys.executable, "-m", f"services.{self.name}", "--config", str(self.config)], self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode if self.proc else '?'}:\n{self.log_tail()}"
                )
            if health_status(self.addr, 1.0) == "SERVING":
                return self
            time.sleep(0.2)
        self.stop(5)
        raise TimeoutError(f"{self.name} not healthy within {timeout} s:\n{self.log_tail()}")


@dataclass
class Stack:
    """A local deployment of one config.

    Args:
        config: The RVA YAML file.
        workdir: Logs, JetStream storage, the Triton model repository, ``stack.json``.
        env: Extra ``RVA_*`` overrides for every service.
        nats_url: Use this NATS instead of starting one.
        triton_url: Use this Triton instead of starting one (``type: triton`` only).
        fixed_ports: Use the config's ports (``up``) instead of free ones (tests).

    """

    config: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    nats_url: str | None = None
    triton_url: str | None = None
    fixed_ports: bool = False
    nats: NatsServer | None = None
    triton: TritonServer | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def start(self, timeout: float = 120.0) -> Stack:
        """Start everything, each health-gated, in dependency order; undo all on failure."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = load_service_config(self.config, {**os.environ, **self.env})
        try:
            if self.nats_url is None:
                self.nats = NatsServer(log_dir=self.workdir / "nats").start()
                self.nats_url = self.nats.url
            env = {**os.environ, **self.env, "RVA_NATS_URL": self.nats_url}
            if isinstance(cfg.detector, TritonDetectorConfig):
                if self.triton_url is None:
                    repo = prepare_model_repository(cfg.detector, self.workdir / "triton-repo")
                    self.triton = TritonServer(repo, log_dir=self.workdir / "triton").start(timeout)
                    self.triton_url = self.triton.url
                env["RVA_DETECTOR_URL"] = self.triton_url
            for name in services_for(cfg):
                section = getattr(cfg.services, name)
                port = section.port if self.fixed_ports and section.port else free_port()
                metrics_port = section.metrics_port if self.fixed_ports and section.metrics_port else free_port()
                env[f"RVA_{name.upper()}_PORT"] = str(port)
                env[f"RVA_{name.upper()}_METRICS_PORT"] = str(metrics_port)
                if name == "inference":
                    env["RVA_INFERENCE_DECODE_ADDRS"] = self.services["decode"].addr
                proc = ServiceProcess(name, self.config, dict(env), port, metrics_port, self.workdir / name)
                self.services[name] = proc
                proc.start(timeout)
            self._write_state()
        except BaseException:
            self.stop()
            raise
        return self

    def _write_state(self) -> None:
        state: dict[str, Any] = {
            "nats": self.nats_url,
            "triton": self.triton_url,
            "services": {
                n: {
                    "addr": p.addr,
                    "metrics": f"127.0.0.1:{p.metrics_port}",
                    "pid": p.proc.pid if p.proc else None,
                    "log": str(p.log_path),
                }
                for n, p in self.services.items()
            },
        }
        (self.workdir / "stack.json").write_text(json.dumps(state, indent=2))

    def stop(self, timeout: float = 20.0) -> dict[str, int | None]:
        """SIGTERM the services in pipeline order (each drains), then Triton and NATS; return exit codes."""
        codes = {name: self.services[name].stop(timeout) for name in (*SERVICES, *OPTIONAL) if name in self.services}
        if self.triton is not None:
            self.triton.stop(timeout)
        if self.nats is not None:
            self.nats.stop(timeout)
        return codes

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
