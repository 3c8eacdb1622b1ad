#!/usr/bin/env bash
# Set up (or update) .venv, then run the test suite. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check --quiet . --exclude .venv
exec .venv/bin/python -m pytest "$@"
