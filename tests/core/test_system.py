"""The whole event path on real parts: event store → relay → tansu → projections → read models,
on the SQLite profile and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from domain.envelope import partition_for
from facesearch.cli import main as cli
from facesearch.services.imports import import_local
from facesearch.settings import Settings
from facesearch.system import System, UnknownProjection
from projections.replay import table_checksums
from projections.tables import checkpoints, imports, photo_sources, photos
from tests.conftest import huge_png_header, truncated_jpeg, write_images


async def rows(system: System, table: sa.Table) -> list[dict]:
    async with system.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(sa.select(table))]


async def started(settings, tansu) -> System:
    system = System(settings.model_copy(update={"kafka_bootstrap": tansu.bootstrap}))
    await system.start()
    return system


async def test_imported_folder_reaches_the_read_models(profile_settings, tansu, tmp_path):
    folder = tmp_path / "album"
    write_images(folder, 12)
    (folder / "nested").mkdir()
    write_images(folder / "nested", 3, start=100)
    (folder / "copy.jpg").write_bytes((folder / "photo_0000.jpg").read_bytes())  # same bytes twice
    (folder / "notes.txt").write_text("not a photo")
    (folder / "bomb.png").write_bytes(huge_png_header())
    (folder / "broken.jpg").write_bytes(truncated_jpeg())

    system = await started(profile_settings, tansu)
    try:
        result = await asyncio.to_thread(import_local, system.app, profile_settings, str(folder), owner="ann", operator=True)
        assert result.counts == {"discovered": 19, "stored": 16, "skipped": 1, "failed": 2}
        await system.wait_until_caught_up(60)

        photo_rows = await rows(system, photos)
        by_status = {}
        for row in photo_rows:
            by_status.setdefault(row["status"], []).append(row)
        assert len(by_status["imported"]) == 15
        assert len(by_status["rejected"]) == 2
        reasons = " ".join(r["reject_reason"] for r in by_status["rejected"])
        assert "too large" in reasons and "truncated" in reasons
        assert all(r["owner"] == "ann" and r["width"] == 64 for r in by_status["imported"])
        # The duplicate is one photo with two provenance records.
        sources = await rows(system, photo_sources)
        assert len(sources) == 18 and len({s["photo_id"] for s in sources}) == 17

        [job] = await rows(system, imports)
        assert (job["status"], job["discovered"], job["stored"], job["duplicates"], job["skipped"], job["failed"]) == (
            "completed", 19, 16, 1, 1, 2,
        )
        # Every event was applied once: the projections' counters equal the events in the store.
        events = [e.family for e in system.read_page(0, 10_000)]
        applied = {name: 0 for name in system.projections}
        for row in await rows(system, checkpoints):
            applied[row["projection"]] += row["applied"]
        assert applied == {
            name: sum(events.count(family) for family in projection.families)
            for name, projection in system.projections.items()
        }
    finally:
        await system.stop()


async def test_broker_restart_loses_nothing(profile_settings, fresh_tansu, tmp_path):
    """The memory broker restarts between two imports: its topics, messages and consumer
    groups are gone. The second import still reaches every read model, exactly once."""
    write_images(tmp_path / "first", 30)
    write_images(tmp_path / "second", 30, start=30)
    system = await started(profile_settings, fresh_tansu)
    try:
        await asyncio.to_thread(import_local, system.app, profile_settings, str(tmp_path / "first"), owner="ann", operator=True)
        await system.wait_until_caught_up(60)
        await asyncio.to_thread(fresh_tansu.restart)
        second = await asyncio.to_thread(
            import_local, system.app, profile_settings, str(tmp_path / "second"), owner="ann", operator=True
        )
        assert second.counts["stored"] == 30, second
        await system.wait_until_caught_up(90)

        photo_rows = await rows(system, photos)
        assert len(photo_rows) == 60 and len({r["id"] for r in photo_rows}) == 60
        jobs = await rows(system, imports)
        assert sorted((j["stored"], j["status"]) for j in jobs) == [(30, "completed"), (30, "completed")]
        events = system.read_page(0, 10_000)
        for row in await rows(system, checkpoints):  # nothing twice, nothing missing
            family = row["topic"].rsplit(".", 1)[1]
            expected = sum(1 for e in events if e.family == family and partition_for(e.aggregate_id, system.settings.partitions) == row["partition"])
            assert row["applied"] == expected, row
    finally:
        await system.stop()


async def test_replay_rebuilds_identical_tables(profile_settings, tansu, tmp_path):
    write_images(tmp_path / "album", 20)
    (tmp_path / "album" / "broken.jpg").write_bytes(truncated_jpeg())
    system = await started(profile_settings, tansu)
    try:
        await asyncio.to_thread(import_local, system.app, profile_settings, str(tmp_path / "album"), owner="ann", operator=True)
        await system.wait_until_caught_up(60)
        tables = [t for p in system.projections.values() for t in p.tables]
        before = await table_checksums(system.runner, tables)
        assert before["photos"][0] == 21 and before["imports"][0] == 1

        counts = await system.replay()
        after = await table_checksums(system.runner, tables)
        assert after == before
        assert counts["photos"] == 21 and counts["imports"] == 1 + 21 * 2 + 1
    finally:
        await system.stop()


async def test_unknown_projection_is_a_clear_error(profile_settings):
    system = System(profile_settings, start_broker=False)
    try:
        with pytest.raises(UnknownProjection, match="no projection named 'nope'"):
            await system.replay(["nope"])
    finally:
        await system.engine.dispose()
        system.app.close()


def test_the_cli_calls_only_an_unknown_projection_a_user_error(tmp_path, monkeypatch):
    settings = Settings(var_dir=tmp_path / "var")
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    refused = CliRunner().invoke(cli.app, ["replay", "nope"])
    assert refused.exit_code == 2 and "no projection named 'nope'" in refused.output

    async def broken_handler(self, names=None):  # a bug inside a projection, not the user's mistake
        raise KeyError("face_id")

    monkeypatch.setattr(System, "replay", broken_handler)
    crashed = CliRunner().invoke(cli.app, ["replay", "photos"])
    assert crashed.exit_code == 1 and isinstance(crashed.exception, KeyError)
