#!/usr/bin/env bash
# ./test.sh [PYTEST ARGS...] — install what the tests need (idempotent) and run every test:
# the panel's JavaScript units (node --test) and the Python suites (unit, contract, end-to-end in a
# real ComfyUI, browser). CI runs exactly this (.ci/run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SHARED="${COMFYUI_REMOTE_SHARED:-$ROOT/../shared}"
# Outside this project's layout (no ../shared beside the checkout), COMFYUI_DIR names an existing
# ComfyUI checkout, run with the harness copy in tests/standalone/ (its pins are for ComfyUI
# 0.3.64: left aside unless COMFYUI_CONSTRAINTS names a file)
if [[ ! -x "$SHARED/tools/comfyui" && -z "${COMFYUI_REMOTE_SHARED:-}" && -n "${COMFYUI_DIR:-}" ]]; then
  SHARED="$ROOT/tests/standalone"
  export COMFYUI_CONSTRAINTS="${COMFYUI_CONSTRAINTS:-none}"
fi
export COMFYUI_REMOTE_SHARED="$SHARED"
export COMFYUI_VENV="${COMFYUI_VENV:-$ROOT/.comfyui-venv}"
export COMFYUI_STATE="${COMFYUI_STATE:-$ROOT/.comfyui-state}"
cd "$ROOT"

log() { printf '[test.sh] %s\n' "$*" >&2; }

[[ -x "$SHARED/tools/comfyui" ]] || {
  log "no ComfyUI harness at $SHARED/tools/comfyui: set COMFYUI_DIR to a ComfyUI checkout (or COMFYUI_REMOTE_SHARED)"; exit 2; }
bash "$SHARED/tools/comfyui" setup
# this pack's requirements go into the ComfyUI venv with its own pip, as ComfyUI-Manager does,
# held to the versions ComfyUI was verified with
log "installing requirements.txt and requirements-dev.txt into $COMFYUI_VENV"
PINS=(-c "${COMFYUI_CONSTRAINTS:-$SHARED/tools/comfyui-constraints.txt}")
[[ "${COMFYUI_CONSTRAINTS:-}" != none ]] || PINS=()
"$COMFYUI_VENV/bin/python" -m pip install --disable-pip-version-check -q \
  "${PINS[@]}" -r requirements.txt -r requirements-dev.txt \
  2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)

# the real comfy-api-proxy (Comfy API v2, self-hosted) for the comfycloud provider's contract and
# end-to-end tests, in its own venv: it pins pydantic 2 and blake3 for itself
PROXY_VENV="${COMFY_PROXY_VENV:-$ROOT/.proxy-venv}"
PROXY_PIN="comfy-api-proxy==0.1.6"
if [[ "$(cat "$PROXY_VENV/.stamp" 2>/dev/null)" != "$PROXY_PIN" ]]; then
  log "installing $PROXY_PIN into $PROXY_VENV"
  if "$COMFYUI_VENV/bin/python" -m venv --clear "$PROXY_VENV" &&
     "$PROXY_VENV/bin/python" -m pip install --disable-pip-version-check -q "$PROXY_PIN" \
       2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); then
    echo "$PROXY_PIN" > "$PROXY_VENV/.stamp"
  else
    log "$PROXY_PIN could not be installed: the tests against the real proxy will be skipped"
  fi
fi

# today's ComfyUI frontend for the browser tests (ComfyUI 0.3.64 pins 1.27.10): the newest
# comfyui-frontend-package the index serves, in its own venv; a second local ComfyUI serves its
# static folder with --front-end-root (tests/browser/conftest.py)
FRONTEND_VENV="$ROOT/.frontend-venv"
log "newest comfyui-frontend-package into $FRONTEND_VENV"
if { [[ -x "$FRONTEND_VENV/bin/python" ]] || python3 -m venv "$FRONTEND_VENV"; } &&
   "$FRONTEND_VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade comfyui-frontend-package \
     2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); then
  COMFYUI_REMOTE_NEWEST_FRONTEND="$("$FRONTEND_VENV/bin/python" -c \
    'import importlib.resources as r; print(r.files("comfyui_frontend_package") / "static")')"
  export COMFYUI_REMOTE_NEWEST_FRONTEND
else
  log "comfyui-frontend-package could not be installed: the browser tests on the newest frontend will be skipped"
fi

# comfy-cli (the Registry's own tool: pyproject validation, ruff security rules, `comfy node pack`
# honouring .comfyignore) for tests/unit/test_registry_ready.py, in its own venv
CLI_VENV="$ROOT/.comfy-cli-venv"
CLI_PIN="comfy-cli==1.23.0"
if [[ "$(cat "$CLI_VENV/.stamp" 2>/dev/null)" != "$CLI_PIN" ]]; then
  log "installing $CLI_PIN into $CLI_VENV"
  if python3 -m venv --clear "$CLI_VENV" &&
     "$CLI_VENV/bin/python" -m pip install --disable-pip-version-check -q "$CLI_PIN" \
       2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); then
    echo "$CLI_PIN" > "$CLI_VENV/.stamp"
  else
    log "$CLI_PIN could not be installed: the Registry checks will fail"
  fi
fi
export COMFY_CLI_VENV="$CLI_VENV"

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

# the import and profile code under Python 3.10–3.13 too, each in the pack's own cached venv
# (COMFYUI_REMOTE_PY_MATRIX=0 leaves it out)
matrix=0
if [[ "${COMFYUI_REMOTE_PY_MATRIX:-1}" != 0 ]]; then
  log "python matrix: scripts/py_matrix.sh"
  bash scripts/py_matrix.sh || matrix=$?
fi

log "python suites: pytest $*"
"$COMFYUI_VENV/bin/python" -m pytest "$@" || exit $?
exit "$matrix"
