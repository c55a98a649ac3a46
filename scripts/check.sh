#!/usr/bin/env bash
# The whole test suite: lint, format, strict types, and pytest replaying cassettes offline.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# `pip install --group` (the dev dependency group) needs pip 25.1 or later.
.venv/bin/python -m pip install --quiet --disable-pip-version-check 'pip>=25.1'
.venv/bin/python -m pip install --quiet --disable-pip-version-check --editable . --group dev

# The LiteLLM proxy that tests/test_litellm_chain.py runs as real relay software: the
# litellm-proxy dependency group, in a virtualenv of its own so that its many dependencies cannot
# move the test environment's versions. Installed again only when the pinned version changes.
proxy_pin=$(sed -n 's/^litellm-proxy = \["litellm\[proxy\]==\([^"]*\)"\]$/\1/p' pyproject.toml)
proxy_installed=$(.venv-proxy/bin/python -c 'import importlib.metadata as m; print(m.version("litellm"))' \
    2>/dev/null || true)
if [ ! -x .venv-proxy/bin/litellm ] || [ "$proxy_installed" != "$proxy_pin" ]; then
    [ -x .venv-proxy/bin/python ] || python3 -m venv .venv-proxy
    # `pip install --group` needs pip 25.1 or later.
    .venv-proxy/bin/python -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=25.1'
    if ! .venv-proxy/bin/python -m pip install --quiet --disable-pip-version-check --group litellm-proxy; then
        # Where it cannot be installed (no wheel for this Python, say), its tests skip and say why.
        echo "check.sh: the LiteLLM proxy could not be installed; the chain tests will be skipped" >&2
        rm -rf .venv-proxy
    fi
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest --record-mode=none --block-network --allowed-hosts=127.0.0.1 "$@"
