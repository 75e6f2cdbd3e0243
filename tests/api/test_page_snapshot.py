"""A page of the gallery and its total count agree even while a projection writes between the
two reads (seen in CI: "totalCount 1" above an empty page, right after an import)."""

from __future__ import annotations

import sqlalchemy as sa

from api.queries import FaceFilter, PhotoFilter, face_page, photo_page
from projections.db import make_engine, snapshot
from projections.tables import metadata, photos


def photo_row(index: int) -> dict[str, object]:
    return dict(id=f"p{index:03d}", owner="ann", content_hash=f"{index:064d}", source="local",
                source_ref=f"local:/{index}", status="analysed", size=1, face_count=0,
                imported_at=f"2026-01-01T00:00:{index:02d}+00:00", deleted=False)


def sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def setup(url: str):
    writer = sa.create_engine(sync_url(url))
    metadata.create_all(writer)
    with writer.begin() as conn:
        conn.execute(photos.insert(), [photo_row(i) for i in range(3)])
    return make_engine(url), writer


def commit_between_reads(engine, writer, marker: str) -> list[int]:
    """Before the first statement that contains `marker`, another connection commits a new
    photo: the moment a projection writes between the page and its count."""
    committed: list[int] = []

    @sa.event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _write(_conn, _cursor, statement, *_args):
        if marker in statement.lower() and not committed:
            with writer.begin() as conn:
                conn.execute(photos.insert(), [photo_row(10)])
            committed.append(10)

    return committed


def urls(tmp_path, pg_database) -> list[str]:
    return [f"sqlite:///{tmp_path / 'rm.sqlite'}", pg_database]


async def test_a_photo_page_and_its_total_are_read_at_one_moment(tmp_path, pg_database):
    for url in urls(tmp_path, pg_database):
        engine, writer = setup(url)
        committed = commit_between_reads(engine, writer, "count(")
        rows, has_next, total = await photo_page(engine, "ann", PhotoFilter(), first=50, after=None)
        assert committed, "the writer ran between the two reads"
        assert (len(rows), total, has_next) == (3, 3, False), url
        # The next read sees the new photo in both.
        rows, _, total = await photo_page(engine, "ann", PhotoFilter(), first=50, after=None)
        assert (len(rows), total) == (4, 4), url
        await engine.dispose()
        writer.dispose()


async def test_a_snapshot_does_not_see_a_commit_made_after_its_first_read(tmp_path, pg_database):
    for url in urls(tmp_path, pg_database):
        engine, writer = setup(url)
        count = sa.select(sa.func.count()).select_from(photos)
        async with snapshot(engine) as conn:
            assert (await conn.execute(count)).scalar_one() == 3
            with writer.begin() as other:
                other.execute(photos.insert(), [photo_row(11)])
            assert (await conn.execute(count)).scalar_one() == 3, url
        async with engine.connect() as conn:  # a plain connection sees it: the test can fail
            assert (await conn.execute(count)).scalar_one() == 4, url
        await engine.dispose()
        writer.dispose()


async def test_a_face_page_reads_through_the_snapshot_too(tmp_path, pg_database):
    for url in urls(tmp_path, pg_database):
        engine, writer = setup(url)
        statements: list[str] = []
        sa.event.listen(engine.sync_engine, "before_cursor_execute",
                        lambda _c, _cur, statement, *_a: statements.append(statement.strip().split()[0].upper()))
        rows, _, total = await face_page(engine, "ann", FaceFilter(), first=10, after=None)
        assert (rows, total) == ([], 0)
        if url.startswith("sqlite"):
            assert statements[0] == "BEGIN", statements  # both reads inside one transaction
        await engine.dispose()
        writer.dispose()
