#!/usr/bin/env bash
# One command: install (if needed) and start everything on the embedded profile:
# SQLite event store and read models, the embedded Milvus server, the tansu broker, workers and the API
# with the web client on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
exec .venv/bin/facesearch up
