"""One analysis worker as a process of its own (`facesearch run worker`): its own app,
broker connection and models, until SIGINT/SIGTERM or `stop`."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from loguru import logger

from facesearch.infra.metrics import WorkerMetrics
from facesearch.infra.transport import BrokerTransport
from facesearch.settings import Settings
from facesearch.system import make_app
from gpu_workers.worker import WORKER_COMMANDS, attach_worker, make_worker


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    app = make_app(settings)
    worker = make_worker(app, settings, name="worker", observer=WorkerMetrics())
    transport = BrokerTransport(settings)
    await transport.ensure_topics([transport.command_topic(kind) for kind in WORKER_COMMANDS])
    attach_worker(transport, settings, worker)
    await transport.start()
    logger.info("worker ready: {} + {}, batches of {}", settings.detector, ", ".join(settings.embedders), settings.worker_batch_size)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            try:  # a restarted memory broker: take part in its new consumer group
                await transport.recover_if_broker_lost()
            except Exception as error:
                logger.warning("broker check failed: {}", error)
    finally:
        await transport.stop()
        worker.close()
        app.close()


if __name__ == "__main__":  # pragma: no cover - a process entry point
    from facesearch.infra.logging import configure_logging
    from facesearch.settings import get_settings

    configure_logging(get_settings(), "INFO")
    asyncio.run(run_worker(get_settings()))
