#!/usr/bin/env bash
# Installs what the tests need beyond pip: the buf CLI (npm). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .tools/node_modules/.bin/buf ]; then
  mkdir -p .tools
  (cd .tools && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --silent --no-audit --no-fund @bufbuild/buf@1.75.0)
fi
# Event-store tests start their own redis-server and PostgreSQL (Debian packages) on free ports.
need=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# The gateway's browser test drives Debian's chromium through Playwright (`playwright install` cannot download).
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
  $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends "${need[@]}"
fi
