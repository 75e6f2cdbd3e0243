"""Runs the whole embedded system (API, broker, relay, projections, workers) for the ops
tests, with monitoring mounted, and stores the photos of --photos once it is up.

    python tests/ops/run_system.py --port 8765 --photos DIR
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from pathlib import Path

import uvicorn

from api.app import create_app
from api.monitoring import install_monitoring
from facesearch.infra.logging import configure_logging
from facesearch.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--photos", type=Path)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between ready and storing the photos")
    args = parser.parse_args()
    settings = Settings()
    configure_logging(settings, "INFO")
    app = create_app(settings)
    if not any(getattr(r, "path", None) == "/metrics" for r in app.routes):  # until the lead mounts it in create_app
        install_monitoring(app, settings)

    def store_photos() -> None:
        # Once the system answers, store the photos through its own app (one event store writer).
        import time

        import httpx

        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{args.port}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        time.sleep(args.delay)
        system = app.state.system
        for path in sorted(args.photos.iterdir()):
            if path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
                system.app.store_photo(path.read_bytes(), owner="ops-test", source="local", source_ref=str(path))

    if args.photos is not None:
        threading.Thread(target=store_photos, daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
