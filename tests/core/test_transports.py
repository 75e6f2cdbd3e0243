"""The transport is one setting: the same event path over RabbitMQ and Redis Streams (both
run on this machine) as over Kafka."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from facesearch.services.imports import import_local
from facesearch.settings import Settings, Transport
from facesearch.system import System
from projections.tables import photos
from tests.conftest import write_images


@pytest.mark.parametrize("transport", [Transport.rabbitmq, Transport.redis], ids=lambda t: t.value)
async def test_import_reaches_the_read_models_over(transport, tmp_path):
    settings = Settings(
        var_dir=tmp_path / "var", transport=transport, topic_prefix=f"fs{uuid.uuid4().hex[:8]}",
        redelivery_after_seconds=2.0,
    )
    write_images(tmp_path / "album", 12)
    system = System(settings)
    assert system.own_broker is None  # no tansu: the configured broker carries everything
    await system.start()
    try:
        result = await asyncio.to_thread(
            import_local, system.app, settings, str(tmp_path / "album"), owner="ann", operator=True
        )
        assert result.counts["stored"] == 12
        await system.wait_until_caught_up(60)
        async with system.engine.connect() as conn:
            stored = (await conn.execute(sa.select(sa.func.count()).select_from(photos))).scalar_one()
        assert stored == 12
        assert sum(system.stats["photos"].values()) >= 12 and system.stats["photos"]["applied"] == 12
    finally:
        await system.stop()
