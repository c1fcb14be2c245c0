#!/usr/bin/env bash
# The test command: set up (idempotent), lint, type-check, then run the whole suite, slow
# tests included.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/.ci/setup.sh"
cd "$ROOT"
export FLWR_TELEMETRY_ENABLED=0 TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/ruff check .
# mypy cannot see through the editable install's import hook: give it a tinymcu/ namespace
# view of symlinks. Modules not listed here still have known type errors to fix (flatbuf,
# oracle, patch, planner, tflite_reader).
VIEW="$(mktemp -d)"
trap 'rm -rf "$VIEW"' EXIT
mkdir "$VIEW/tinymcu"
for f in "$ROOT"/tinymcu/*; do ln -s "$f" "$VIEW/tinymcu/"; done
for d in mcu_runtime export prune firmware_templates; do ln -s "$ROOT/$d" "$VIEW/tinymcu/$d"; done
MYPYPATH="$VIEW" .venv/bin/mypy -p tinymcu.mcu_runtime.ops -p tinymcu.mcu_runtime.codegen \
  $(for m in check emulator execute flexbuf geometry ir passes pipeline quant regions report schedule \
      tflm_arena; do printf -- "-m tinymcu.mcu_runtime.%s " "$m"; done)
.venv/bin/python -m pytest -q --durations=30 tests "$@"
