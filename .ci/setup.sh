#!/usr/bin/env bash
# Create or refresh .venv at the repo root and install what is missing (apt + pinned pip).
# Idempotent: when nothing changed it only checks and returns in about a second.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PKGS=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm cmake)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PY" -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp="$(cat pyproject.toml .ci/setup.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat .venv/.tinymcu-stamp 2>/dev/null)" != "$stamp" ] || ! .venv/bin/python -c "import tinymcu" 2>/dev/null; then
  echo "setup: installing Python packages into .venv (pinned; first run takes a few minutes)"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # torch first and pinned: an unpinned resolution pulls a multi-GB CUDA build.
  .venv/bin/pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/pip install -q -e ".[export,litert,federated,flash,dev]" 2>&1 | grep -v "^WARNING: Location" || true
  # animal-mnist ships its images in the wheel; its declared deps (full tensorflow) are not needed
  .venv/bin/pip install -q --no-deps animal-mnist==0.4 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import tinymcu, torch, tensorflow, flwr, tflite_micro" >/dev/null 2>&1 \
    || { echo "setup: the Python install failed (see pip output above)" >&2; exit 1; }
  echo "$stamp" > .venv/.tinymcu-stamp
fi
