"""People fixtures: a System on temporary SQLite files (no broker), synthetic faces, and a
way to apply the new events to the people projection as the broker would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from commands.people import FaceSet
from facesearch.settings import Settings
from facesearch.system import System
from projections.people import people_projection
from tests.pipeline.conftest import data_dir, models_dir, pipeline_settings  # noqa: F401 (the pipeline test's fixtures)

# Synthetic faces of one identity have cosine ≈ 0.75 with each other and ≈ 0 with others
# (512-d, like FaceNet512 on LFW); 0.4 is about FaceNet512's calibrated threshold.
THRESHOLD = 0.4
DIM = 512


class Faces:
    """Synthetic identities: `face(identity)` returns a new face id and vector of that person."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.centres: dict[str, np.ndarray] = {}
        self.ids: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.low: list[bool] = []
        self.identity: dict[str, str] = {}
        self.photos = 0

    def face(self, identity: str, photo: str | None = None, index: int = 0, low_quality: bool = False) -> str:
        if identity not in self.centres:
            c = self.rng.standard_normal(DIM)
            self.centres[identity] = c / np.linalg.norm(c)
        if photo is None:
            self.photos += 1
            photo = f"photo{self.photos:05d}"
        v = self.centres[identity] + self.rng.standard_normal(DIM) * 0.025
        face_id = f"{photo}:{index}"
        self.ids.append(face_id)
        self.vectors.append(v / np.linalg.norm(v))
        self.low.append(low_quality)
        self.identity[face_id] = identity
        return face_id

    def people(self, count: int, per: int, prefix: str = "id") -> None:
        for i in range(count):
            for _ in range(per):
                self.face(f"{prefix}{i}")

    def face_set(self) -> FaceSet:
        return FaceSet(list(self.ids), np.stack(self.vectors), np.array(self.low))

    def of(self, identity: str) -> set[str]:
        return {f for f, who in self.identity.items() if who == identity}

    def neighbours(self, face_id: str, vector: np.ndarray, limit: int = 20) -> list[tuple[str, float]]:
        """Brute-force nearest neighbours, standing in for Milvus."""
        sims = np.stack(self.vectors) @ vector
        order = np.argsort(-sims)[:limit]
        return [(self.ids[i], float(sims[i])) for i in order]


@pytest.fixture
def faces() -> Faces:
    return Faces()


@pytest.fixture
async def system(tmp_path: Path):
    system = System(Settings(var_dir=tmp_path / "var"), start_broker=False)
    await system.prepare_read_models()
    yield system
    await system.engine.dispose()
    system.app.close()


async def project(system: System, after: int = 0) -> int:
    """Applies every event after `after` to the people projection, in order; returns the last id."""
    last = after
    for envelope in await asyncio.to_thread(system.read_page, after, 100_000):
        if envelope.family in people_projection.families:
            async with system.runner.writer.transaction() as conn:
                await people_projection.apply(conn, envelope)
        last = envelope.notification_id
    return last
