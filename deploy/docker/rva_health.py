#!/usr/bin/env python3
"""Container health check for an RVA service: ``rva_health.py PORT`` exits 0 when it reports SERVING.

Installed in the image as ``rva-grpc-health`` (compose health checks; Kubernetes uses native grpc probes).
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    """Check ``127.0.0.1:<port>``'s overall health within 3 s."""
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: rva-grpc-health PORT", file=sys.stderr)
        return 2
    with grpc.insecure_channel(f"127.0.0.1:{argv[1]}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.RpcError as err:
            print(f"unhealthy: {err.code().name}", file=sys.stderr)
            return 1
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
