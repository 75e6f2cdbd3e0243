#!/usr/bin/env bash
# The test suite: unit, integration (real PostgreSQL, tansu, Milvus Lite, model weights),
# end-to-end and browser tests. Slow benchmarks are marked `slow` and not run here.
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools some tests drive: Chromium for the browser tests, Prometheus for the
# monitoring test, docker-compose (v1) to validate the production compose file without a
# Docker engine. Installed from Debian's registry when missing.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing ${missing[*]}: install them with apt-get (needed by browser and monitoring tests)" >&2
  fi
fi

# Lint first, so a finding fails the run (and CI) before the long tests: ruff and mypy read
# their settings from pyproject.toml (mypy checks the packages it lists there).
.venv/bin/python -m ruff check .
.venv/bin/python -m mypy

.venv/bin/python -m pytest "$@"
