"""Face-model fixtures: weights come from the same pull code users run (`facesearch models
pull`), cached in settings.models_dir, so only the first session pays for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from facesearch.settings import Settings, get_settings
from gpu_workers.evaluation import read_rgb


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def data_dir(settings: Settings) -> Path:
    if not (settings.data_dir / "photos").is_dir():
        pytest.skip(f"evaluation photos not found under {settings.data_dir}")
    return settings.data_dir


@pytest.fixture(scope="session")
def models_dir(settings: Settings, data_dir: Path) -> Path:
    from facesearch.cli.models import pull_models

    pulled = pull_models(settings)
    assert {"retinaface", "mtcnn", "facenet512", "arcface"} <= set(pulled)
    return Path(settings.models_dir)


@pytest.fixture(scope="session")
def detectors(models_dir: Path) -> dict:
    from gpu_workers.registry import DETECTORS

    return {name: cls(models_dir, use_gpu=False) for name, cls in DETECTORS.items() if name != "retinaface-r50"}


@pytest.fixture(scope="session")
def analyzers(models_dir: Path) -> dict:
    from gpu_workers.analyzer import FaceAnalyzer

    return {name: FaceAnalyzer("retinaface", name, models_dir, use_gpu=False) for name in ("facenet512", "arcface")}


@pytest.fixture(scope="session")
def photo(data_dir: Path):
    def load(relative: str):
        return read_rgb(data_dir / relative)

    return load
