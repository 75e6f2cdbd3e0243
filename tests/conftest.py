"""Shared fixtures: the real broker (tansu), real PostgreSQL, and settings for either profile."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from facesearch.infra.tansu import TansuBroker
from facesearch.settings import Settings

# The suite's embedded Milvus is the Lite file (opened in-process in a second); the tests of the
# quick start's default, the embedded Milvus server, ask for it by name (tests/reliability/
# test_restart.py, tests/reliability/test_embedded_milvus.py).
os.environ.setdefault("FACESEARCH_MILVUS_EMBEDDED", "lite")

PG_ADMIN_DSN = os.environ.get("FACESEARCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def fresh_tansu(tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of the test's own, for tests that restart it (its log in the test's folder)."""
    with TansuBroker(log_path=tmp_path / "tansu.log") as broker:
        yield broker


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new PostgreSQL database for one test, dropped afterwards; returns its DSN."""
    name = f"fs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def profile_settings(request, tmp_path: Path) -> Settings:
    """Settings on the embedded SQLite files, or on a fresh PostgreSQL database (same suite)."""
    overrides: dict[str, object] = {"var_dir": tmp_path / "var", "redelivery_after_seconds": 2.0}
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_database")
        overrides |= {"event_store_dsn": dsn, "read_model_url": dsn}
    return Settings(**overrides)


def make_image(index: int, size: tuple[int, int] = (64, 48), fmt: str = "JPEG") -> bytes:
    """A small distinct image (its colour depends on `index`)."""
    buffer = io.BytesIO()
    colour = (index * 37 % 256, index * 91 % 256, index * 53 % 256)
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def write_images(folder: Path, count: int, start: int = 0, size: tuple[int, int] = (64, 48)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"photo_{i:04d}.jpg"
        path.write_bytes(make_image(i, size))
        paths.append(path)
    return paths


def data_dir() -> Path:
    return Settings().data_dir


def huge_png_header(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid PNG that claims width × height pixels but carries almost no data:
    what a decompression bomb looks like to a decoder that trusts the header."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    whole = make_image(7, size=(640, 480))
    return whole[: len(whole) // 2]
