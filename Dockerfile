# The application image: API, relay, projections and workers (one image, role by command).
# ONNX Runtime picks CUDA when the container gets a GPU (docker-compose.yml reserves one per
# worker) and the onnxruntime-gpu wheel is installed (build with --build-arg ORT=onnxruntime-gpu).
FROM python:3.11-slim-bookworm AS build
ARG ORT=onnxruntime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml constraints.txt* ./
COPY domain domain
COPY commands commands
COPY gpu_workers gpu_workers
COPY projections projections
COPY api api
COPY facesearch facesearch
RUN python -m venv /venv \
 && /venv/bin/pip install $( [ -f constraints.txt ] && echo "-c constraints.txt" ) . \
 && if [ "$ORT" != "onnxruntime" ]; then /venv/bin/pip uninstall -y onnxruntime && /venv/bin/pip install "$ORT"; fi

FROM node:22-bookworm-slim AS client
WORKDIR /client
COPY frontend/package*.json ./
RUN npm ci --no-audit --no-fund
COPY frontend ./
RUN npm run build

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app facesearch
COPY --from=build /venv /venv
COPY --from=build /app /app
COPY --from=client /client/dist /app/frontend/dist
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 FACESEARCH_PROFILE=production FACESEARCH_VAR_DIR=/app/var
WORKDIR /app
RUN mkdir -p /app/var/models && chown -R facesearch /app/var
USER facesearch
EXPOSE 8000 9400
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s CMD curl -fsS http://localhost:8000/health || curl -fsS http://localhost:9400/metrics > /dev/null || exit 1
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
