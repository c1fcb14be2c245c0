#!/usr/bin/env bash
# The test command: set up (idempotent), then run the whole suite, slow tests included.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/.ci/setup.sh"
cd "$ROOT"
export FLWR_TELEMETRY_ENABLED=0 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -q tests "$@"
