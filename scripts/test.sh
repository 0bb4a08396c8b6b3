#!/usr/bin/env bash
# Set up (scripts/setup.sh), then lint, types, the walls between the stages, and the whole test suite,
# slow tests included. `--fast`: only the tests that start no TensorFlow, no worker and no server
# (under a minute; for a change to the leaderboard, the CLI's checks, a space or the record).
# Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
fast=()
if [ "${1:-}" = "--fast" ]; then
  fast=(-m fast)
  shift
fi
bash scripts/setup.sh
.venv/bin/ruff check search tests spaces benchmarks
.venv/bin/mypy search
.venv/bin/lint-imports
.venv/bin/python -m pytest ${fast[@]+"${fast[@]}"} "$@"
