#!/usr/bin/env bash
# The whole test suite: lint, format, strict types, the docs build, and pytest replaying cassettes
# offline, on pinned versions (constraints/). PYTHON and VENV choose the interpreter and the
# environment: `PYTHON=python3.13 VENV=.venv-3.13 bash scripts/check.sh` (CI runs 3.10 and 3.13).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}

# pip_install VENV CONSTRAINTS ARGS...: pinned, quiet. `--group` needs pip 25.1 or later.
pip_install() {
    "$1/bin/python" -m pip install --quiet --disable-pip-version-check -c "$2" "${@:3}"
}

[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
pip_install "$venv" constraints/dev.txt 'pip>=25.1'
pip_install "$venv" constraints/dev.txt --editable . --group dev

# The LiteLLM proxy that tests/test_litellm_chain.py runs as real relay software: the
# litellm-proxy dependency group, in a virtualenv of its own so that its many dependencies cannot
# move the test environment's versions. Installed again only when the pinned version changes.
proxy_pin=$(sed -n 's/^litellm-proxy = \["litellm\[proxy\]==\([^"]*\)"\]$/\1/p' pyproject.toml)
proxy_installed=$(.venv-proxy/bin/python -c 'import importlib.metadata as m; print(m.version("litellm"))' \
    2>/dev/null || true)
if [ ! -x .venv-proxy/bin/litellm ] || [ "$proxy_installed" != "$proxy_pin" ]; then
    [ -x .venv-proxy/bin/python ] || python3 -m venv .venv-proxy
    pip_install .venv-proxy constraints/litellm-proxy.txt 'pip>=25.1'
    if ! pip_install .venv-proxy constraints/litellm-proxy.txt --group litellm-proxy; then
        # Where it cannot be installed (no wheel for this Python, say), its tests skip and say why.
        echo "check.sh: the LiteLLM proxy could not be installed; the chain tests will be skipped" >&2
        rm -rf .venv-proxy
    fi
fi

# Ray Data, for tests/integration/test_ray_adapter.py: the ray dependency group with the project,
# in a virtualenv of its own beside $venv, on the same Python (.venv-ray, .venv-3.13-ray): Ray
# brings pandas, pyarrow and more that must not move the test environment's versions. Installed
# again only when its pins or pyproject.toml change (a stamp of both, kept in the virtualenv).
ray_venv="$venv-ray"
ray_stamp=$(cat constraints/ray.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$ray_venv/.image-tool-stamp" 2>/dev/null || true)" != "$ray_stamp" ]; then
    if { [ -x "$ray_venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$ray_venv"; } &&
        pip_install "$ray_venv" constraints/ray.txt 'pip>=25.1' &&
        pip_install "$ray_venv" constraints/ray.txt --editable . --group ray; then
        echo "$ray_stamp" >"$ray_venv/.image-tool-stamp"
    else
        # Where Ray cannot be installed (no wheel for this Python, say), its tests are skipped.
        echo "check.sh: Ray could not be installed; the Ray tests will be skipped" >&2
        rm -rf "$ray_venv"
    fi
fi

"$venv/bin/python" scripts/make_sync.py --check
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"
NO_MKDOCS_2_WARNING=1 "$venv/bin/mkdocs" build --strict --quiet --site-dir site
"$venv/bin/pytest" --record-mode=none --block-network --allowed-hosts=127.0.0.1 "$@"
# The Ray tests, which the run above skips (no Ray in $venv); the arguments were that run's.
if [ -x "$ray_venv/bin/python" ]; then
    "$ray_venv/bin/python" -m pytest --record-mode=none --block-network --allowed-hosts=127.0.0.1 \
        tests/integration/test_ray_adapter.py
else
    echo "check.sh: no $ray_venv; the Ray tests were skipped" >&2
fi
