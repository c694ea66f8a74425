#!/usr/bin/env bash
# scripts/py_matrix.sh — the import and profile code under every Python the pack promises
# (pyproject: 3.10–3.13), each in the pack's own venv beside the checkout (.py310-venv, …: cached,
# rebuilt when the interpreter or requirements.txt change) holding requirements.txt, PyAV and
# pytest only, as a user's ComfyUI venv would. Runs: every engine/providers module imported without
# ComfyUI, tests/unit/test_profiles*.py (incl. the Windows-only paths, exercised by substituting
# the missing OS functions). A version whose interpreter the machine lacks is skipped with the
# reason logged. Exit status: non-zero when a version that ran failed.
#   COMFYUI_REMOTE_PYTHONS="3.10 3.12"   versions to run (default: 3.10–3.13 except the suite's own)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[py-matrix] %s\n' "$*" >&2; }
SELECTION=(tests/unit/test_smoke_imports.py::test_engine_providers_sandbox_and_routes_import_without_comfyui
           tests/unit/test_profiles*.py)
OWN="$("${COMFYUI_VENV:-$ROOT/.comfyui-venv}/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
VERSIONS="${COMFYUI_REMOTE_PYTHONS:-3.10 3.11 3.12 3.13}"
# what every ComfyUI venv holds that the engine imports: PyAV (ComfyUI's requirements.txt: av>=14.2.0),
# which the media engine decodes and encodes with
COMFYUI_PROVIDES=("av>=14.2.0")

find_python() {  # the newest interpreter of version $1: pyenv's, else one on PATH
  local v="$1" root cand
  root="${PYENV_ROOT:-$HOME/.pyenv}"
  for cand in $(ls -d "$root/versions/$v".* 2>/dev/null | sort -V -r); do
    [[ -x "$cand/bin/python$v" ]] && { echo "$cand/bin/python$v"; return; }
  done
  command -v "python$v" 2>/dev/null
}

venv_of() { echo "$ROOT/.py${1/./}-venv"; }

build() {  # build (or keep) the venv of version $1 with interpreter $2; non-zero when pip failed
  local v="$1" py="$2" venv stamp runner
  venv="$(venv_of "$v")"
  stamp="$("$py" -VV 2>&1 | head -1) $( (cat requirements.txt requirements-dev.txt; echo "${COMFYUI_PROVIDES[*]}") | sha256sum | cut -c1-16)"
  [[ "$(cat "$venv/.stamp" 2>/dev/null)" == "$stamp" ]] && return 0
  log "python $v: building $venv"
  # requirements.txt as a user installs it into ComfyUI's venv (which has PyAV), plus the test
  # runner pins of requirements-dev.txt
  mapfile -t runner < <(grep -E '^(pytest|hypothesis)' requirements-dev.txt)
  "$py" -m venv --clear "$venv" &&
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-compile -q -r requirements.txt "${COMFYUI_PROVIDES[@]}" "${runner[@]}" \
      2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2) &&
    echo "$stamp" > "$venv/.stamp"
}

failed=()
declare -A builders=()
for v in $VERSIONS; do  # the venvs are built side by side (mostly waiting on downloads and unpacking)
  if [[ -z "${COMFYUI_REMOTE_PYTHONS:-}" && "$v" == "$OWN" ]]; then
    log "python $v: the suite's own interpreter (the full suite runs there): not repeated"; continue
  fi
  py="$(find_python "$v")"
  if [[ -z "$py" ]]; then
    log "python $v: no interpreter on this machine (pyenv or python$v on PATH): skipped"; continue
  fi
  build "$v" "$py" &
  builders[$v]=$!
done
for v in $VERSIONS; do
  [[ -n "${builders[$v]:-}" ]] || continue
  if ! wait "${builders[$v]}"; then
    log "python $v: its venv could not be built (pip): FAILED"; failed+=("$v"); continue
  fi
  venv="$(venv_of "$v")"
  log "python $v: $("$venv/bin/python" -V 2>&1) — ${SELECTION[*]}"
  # shellcheck disable=SC2086
  if ! "$venv/bin/python" -m pytest -q -p no:cacheprovider ${SELECTION[*]}; then
    failed+=("$v")
  fi
done
if (( ${#failed[@]} )); then
  log "failed under python ${failed[*]}"; exit 1
fi
log "every available python passed"
