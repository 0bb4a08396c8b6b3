#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the whole test suite, slow tests included, plus lint and types.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check search tests spaces benchmarks
.venv/bin/mypy search
.venv/bin/python -m pytest "$@"
