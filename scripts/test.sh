#!/usr/bin/env bash
# The whole check: lint, format, then every test (unit, app, end-to-end in headless chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest "$@"
