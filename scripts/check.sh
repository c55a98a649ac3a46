#!/usr/bin/env bash
# The whole test suite: lint, format, strict types, and pytest replaying cassettes offline.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --editable '.[dev]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest --record-mode=none --block-network --allowed-hosts=127.0.0.1 "$@"
