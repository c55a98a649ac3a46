#!/usr/bin/env bash
# The suite's quick part (not marked slow) on versions other than the pins:
#   bash scripts/check_versions.sh lowest   every lower bound of pyproject.toml (constraints/lowest.txt)
#   bash scripts/check_versions.sh newest   the newest releases, unconstrained, upgraded on every run
# PYTHON chooses the interpreter (CI: lowest on 3.11, newest on 3.11 and 3.13); arguments after
# the first go to pytest. Then the Ray tests, with the ray extra at the same end of its range, in
# a virtualenv of their own (Ray brings pandas, pyarrow and more). Each keeps its virtualenvs:
# .venv-lowest-3.11 and .venv-lowest-3.11-ray, .venv-newest-3.13 and .venv-newest-3.13-ray...
set -euo pipefail
cd "$(dirname "$0")/.."
versions=${1:?usage: bash scripts/check_versions.sh lowest|newest [pytest arguments]}
python=${PYTHON:-python3}
venv=.venv-$versions-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# mcp 2.3, the lowest the mcp extra allows, needs a newer pydantic than image-tool's lower bound:
# the lowest run goes without it (its tests skip).
case $versions in
lowest) pins=(-c constraints/lowest.txt) extras=agents,progress,otel ;;
newest) pins=(--upgrade --upgrade-strategy eager) extras=agents,progress,otel,mcp ;;
*) echo "check_versions.sh: lowest or newest, not '$versions'" >&2 && exit 2 ;;
esac

# install VENV ARGS...: the virtualenv made when missing, then pip install ARGS into it, and the
# versions of what the bounds name shown.
install() {
    [ -x "$1/bin/python" ] || "$python" -m venv "$1"
    "$1/bin/python" -m pip install --quiet --disable-pip-version-check 'pip>=25.1'
    "$1/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" "${@:2}"
    "$1/bin/python" -m pip list --disable-pip-version-check 2>/dev/null | grep -iE \
        '^(langchain-core|langchain|langgraph|pydantic|httpx2|httpcore2|tenacity|vcrpy|rich|ray|pyarrow|opentelemetry-api) ' || true
}
offline=(--record-mode=none --block-network --allowed-hosts=127.0.0.1)

install "$venv" --editable ".[$extras]" --group test
"$venv/bin/pytest" -m "not slow" "${offline[@]}" "${@:2}"
install "$venv-ray" --editable ".[ray]" --group ray-tests
"$venv-ray/bin/python" -m pytest "${offline[@]}" tests/integration/test_ray_adapter.py
