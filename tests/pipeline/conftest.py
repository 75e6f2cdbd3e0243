"""Pipeline fixtures: real broker (tansu), real workers and models, Milvus Lite, SQLite."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from facesearch.settings import Settings, get_settings
from facesearch.system import System
from projections.tables import photos


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = get_settings().data_dir
    if not (path / "lfw" / "clusters.csv").is_file():
        pytest.skip(f"evaluation photos not found under {path}")
    return path


@pytest.fixture(scope="session")
def models_dir(data_dir: Path) -> Path:
    """Weights and calibrations, pulled once by the same code users run (cached: a second
    call only verifies the files and sees the calibrations current)."""
    from facesearch.cli.models import pull_models

    settings = get_settings()
    pull_models(settings)
    return Path(settings.models_dir)


@pytest.fixture
def pipeline_settings(tmp_path: Path, models_dir: Path, tansu) -> Settings:
    return Settings(
        var_dir=tmp_path / "var", models_dir=models_dir, kafka_bootstrap=tansu.bootstrap,
        topic_prefix=f"t{tmp_path.name[-12:].replace('-', '_')}", redelivery_after_seconds=2.0,
        worker_batch_size=8, worker_max_wait_ms=100, worker_session_timeout_ms=6000, worker_use_gpu=False,
        allowed_import_roots=[tmp_path],
    )


def lfw_identities(data_dir: Path, count: int, per_identity: int) -> dict[str, list[Path]]:
    """The first `count` identities of clusters.csv with their first `per_identity` images."""
    by_identity: dict[str, list[Path]] = {}
    with open(data_dir / "lfw" / "clusters.csv", newline="") as f:
        for row in csv.DictReader(f):
            by_identity.setdefault(row["identity"], []).append(data_dir / "lfw" / row["path"])
    chosen = [name for name, paths in by_identity.items() if len(paths) >= per_identity][:count]
    return {name: by_identity[name][:per_identity] for name in chosen}


def collage(paths: list[Path]) -> bytes:
    """A 'group photo': the images side by side in one JPEG (tile i spans x in [250 i, 250 (i+1)))."""
    tiles = [Image.open(p).convert("RGB").resize((250, 250)) for p in paths]
    group = Image.new("RGB", (250 * len(tiles), 250))
    for i, tile in enumerate(tiles):
        group.paste(tile, (250 * i, 0))
    buffer = io.BytesIO()
    group.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


async def wait_until_analysed(system: System, expected: int, timeout: float = 120.0) -> None:
    """Until `expected` photos are out of 'imported' in the read model and every projection caught up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with system.engine.connect() as conn:
            done = (await conn.execute(sa.select(sa.func.count()).where(photos.c.status.in_(["analysed", "no_faces"])))).scalar()
        if done >= expected:
            await system.wait_until_caught_up(timeout)
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"only {done} of {expected} photos analysed within {timeout} s")
