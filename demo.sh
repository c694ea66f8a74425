#!/usr/bin/env bash
# ./demo.sh — install ComfyUI Remote into a ComfyUI, start it, send the bundled picture
# (sandbox/assets/lakeside.png) through the no-key sandbox, which inverts it remotely, and print
# where the input, the result and a side-by-side of both are saved, and the URL to open.
#
# Which ComfyUI: $COMFYUI_DIR if set; else ../shared/comfyui (run through ../shared/tools/comfyui,
# which sets up its own venv); else a fresh one installed with comfy-cli under .demo/ (needs PyPI
# and GitHub). Environment: DEMO_PORT (default 8188, "auto" for any free port), DEMO_KEEP=0 to stop
# ComfyUI after the run (default: keep it running so you can open the URL).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$ROOT/scripts/demo.py" "$@"
