#!/usr/bin/env bash
# Regenerates the Python protobuf modules from protos/ (grpcio-tools' bundled protoc).
# Output lands beside the package layout: protos/rva/<area>/v1/x.proto -> rva/<area>/v1/x_pb2.py(i).
# Run after editing a .proto; CI fails when the checked-in modules are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
mapfile -t files < <(find protos -name '*.proto' | sort)
"$PY" -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. "${files[@]}"
