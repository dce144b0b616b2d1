#!/usr/bin/env bash
# Installs what the tests need beyond pip: the buf CLI (npm). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .tools/node_modules/.bin/buf ]; then
  mkdir -p .tools
  (cd .tools && { [ -f package.json ] || echo '{"name": "rva-tools", "private": true}' > package.json; } && npm install --silent --no-audit --no-fund @bufbuild/buf@1.75.0)
fi
# TrackEval scores tracking; its declared deps would pull opencv-python over the headless build.
PIP="${VENV:-.venv}/bin/pip"
"${VENV:-.venv}/bin/python" -c "import trackeval" 2>/dev/null || "$PIP" install -q --no-deps trackeval==1.3.0
# Event-store tests start their own redis-server and PostgreSQL (Debian packages) on free ports.
need=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# The gateway's browser test drives Debian's chromium through Playwright (`playwright install` cannot download).
[ -x /usr/bin/chromium ] || need+=(chromium)
# The sync fault tests run the sync service with its clock 2 h ahead (libfaketime).
command -v faketime >/dev/null 2>&1 || need+=(faketime)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
  $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends "${need[@]}"
fi
# Triton Inference Server for the service tests: the tritonserver binary that nvidia-pytriton bundles
# (python backend). Unpacked outside the venv because the package pins numpy<2 (the server does not).
PY=${VENV:-.venv}/bin/python
if [ ! -x .tools/pytriton/pytriton/tritonserver/bin/tritonserver ]; then
  "$PY" -m pip install -q --no-deps --target .tools/pytriton nvidia-pytriton==0.7.0
fi
# Its python-backend stub links libpythonX.Y.so.1.0 of the venv's Python (Debian: package libpythonX.Y).
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
LIBDIR=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
if [ ! -e "$LIBDIR/libpython$PYVER.so.1.0" ] && ! /sbin/ldconfig -p | grep -q "libpython$PYVER.so.1.0" \
    && command -v apt-get >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
  $SUDO apt-get update -qq
  $SUDO apt-get install -y --no-install-recommends "libpython$PYVER" || $SUDO apt-get install -y "libpython${PYVER}t64"
fi
