#!/usr/bin/env bash
# ./test.sh [PYTEST ARGS...] — install what the tests need (idempotent) and run every test:
# the panel's JavaScript units (node --test) and the Python suites (unit, contract, end-to-end in a
# real ComfyUI, browser). CI runs exactly this (.ci/run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SHARED="${COMFYUI_REMOTE_SHARED:-$ROOT/../shared}"
export COMFYUI_VENV="${COMFYUI_VENV:-$ROOT/.comfyui-venv}"
export COMFYUI_STATE="${COMFYUI_STATE:-$ROOT/.comfyui-state}"
cd "$ROOT"

log() { printf '[test.sh] %s\n' "$*" >&2; }

[[ -x "$SHARED/tools/comfyui" ]] || { log "no ComfyUI harness at $SHARED/tools/comfyui (set COMFYUI_REMOTE_SHARED)"; exit 2; }
bash "$SHARED/tools/comfyui" setup
# this pack's requirements go into the ComfyUI venv with its own pip, as ComfyUI-Manager does,
# held to the versions ComfyUI was verified with
log "installing requirements.txt and requirements-dev.txt into $COMFYUI_VENV"
"$COMFYUI_VENV/bin/python" -m pip install --disable-pip-version-check -q \
  -c "$SHARED/tools/comfyui-constraints.txt" -r requirements.txt -r requirements-dev.txt \
  2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)

# Debian's chromium for the browser test (Playwright may not download browsers here)
if ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian chromium for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
      log "chromium could not be installed: the browser test will be skipped"
  else
    log "chromium missing and not root: the browser test will be skipped"
  fi
fi

if command -v node >/dev/null 2>&1; then
  log "panel units: node --test web/tests/"
  node --test web/tests/
else
  log "node missing: panel JavaScript units skipped"
fi

log "python suites: pytest $*"
exec "$COMFYUI_VENV/bin/python" -m pytest "$@"
