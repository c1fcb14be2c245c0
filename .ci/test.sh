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
# view of symlinks, then check the whole package (pyproject.toml [tool.mypy]; its override
# names the untyped third-party imports).
VIEW="$(mktemp -d)"
trap 'rm -rf "$VIEW"' EXIT
mkdir "$VIEW/tinymcu"
for f in "$ROOT"/tinymcu/*; do ln -s "$f" "$VIEW/tinymcu/"; done
for d in mcu_runtime export prune firmware_templates; do ln -s "$ROOT/$d" "$VIEW/tinymcu/$d"; done
MYPYPATH="$VIEW" .venv/bin/mypy -p tinymcu
# the suite is CPU-bound: one worker per core (tests share no fixed paths or ports)
.venv/bin/python -m pytest -q -n auto --dist worksteal --durations=30 tests "$@"
