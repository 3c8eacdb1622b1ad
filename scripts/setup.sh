#!/usr/bin/env bash
# Create (or bring up to date) the project's environment in .venv/ at the repository root.
# CPU machines get the CPU recipe of shared/SGLANG_CPU.md; a machine with an NVIDIA GPU the
# normal SGLang install. Safe to run again: each step is a no-op when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
SGLANG_VERSION=0.5.23
PY=${PYTHON:-python3}
VENV=.venv
log() { printf '[setup] %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# mooncake's transfer engine needs libibverbs at import time (no RDMA hardware is used).
if ! ldconfig -p | grep -q 'libibverbs.so.1'; then
  log "installing libibverbs1 (apt)"
  as_root apt-get install -y -q libibverbs1 >/dev/null 2>&1 \
    || { as_root apt-get update -q >/dev/null && as_root apt-get install -y -q libibverbs1 >/dev/null; }
fi

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  log "GPU found: normal SGLang install"
  "${PIP[@]}" "sglang==$SGLANG_VERSION" mooncake-transfer-engine "nixl==1.5.1"
else
  log "no GPU: CPU recipe (torch 2.13.0 CPU, sglang --no-deps)"
  C=(-c requirements/constraints-cpu.txt)
  "${PIP[@]}" "${C[@]}" torch==2.13.0
  "${PIP[@]}" "${C[@]}" -r requirements/sglang-cpu.txt
  "${PIP[@]}" "${C[@]}" --no-deps "sglang==$SGLANG_VERSION" \
    mooncake-transfer-engine-non-cuda==0.3.13.post1 nixl==1.5.1 nixl-cu12==1.5.1
fi
"${PIP[@]}" -c requirements/constraints-cpu.txt -r requirements/project.txt
"${PIP[@]}" --no-deps -e .

# Versioned patches for what no plugin hook can reach; verified, idempotent.
"$VENV/bin/python" -m patches apply
"$VENV/bin/python" -m patches check
log "ready: $VENV"
