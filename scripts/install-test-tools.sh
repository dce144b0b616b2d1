#!/usr/bin/env bash
# Installs what the tests need beyond pip: the buf CLI (npm). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .tools/node_modules/.bin/buf ]; then
  mkdir -p .tools
  (cd .tools && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --silent --no-audit --no-fund @bufbuild/buf@1.75.0)
fi
