#!/usr/bin/env bash
# The whole test suite: contracts (buf lint, generated code current), static checks, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

echo "== buf lint"
.tools/node_modules/.bin/buf lint

echo "== generated protobuf modules are current"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mapfile -t protos < <(find protos -name '*.proto' | sort)
"$BIN/python" -m grpc_tools.protoc -Iprotos --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" "${protos[@]}"
for f in $(cd "$tmp" && find . -type f); do
  cmp -s "$tmp/$f" "$f" || { echo "stale generated file $f: run 'make protos'"; exit 1; }
done

echo "== ruff"
"$BIN/ruff" check rva tests bench services triton_models scripts gateway deploy

echo "== pytest"
exec "$BIN/pytest" "$@"
