#!/usr/bin/env bash
# The main job: generate an image through the tool (your relay if configured, else FakeRelay).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --editable .
exec .venv/bin/python examples/quickstart.py "$@"
