#!/usr/bin/env bash
# The main job: set up (idempotent), then run `tinymcu demo` end-to-end on built-in data.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/.ci/setup.sh"
cd "$ROOT"
export FLWR_TELEMETRY_ENABLED=0 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/tinymcu demo --out demo_out "$@"
