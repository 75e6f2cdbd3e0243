"""Weights are verified by SHA-256: a corrupt or missing file is refused with a clear message."""

from __future__ import annotations

import shutil

import pytest

from gpu_workers import weights
from gpu_workers.registry import model_spec


def test_installed_models_verify(models_dir):
    for model in ("retinaface", "mtcnn", "facenet512"):
        assert weights.verify(models_dir, model_spec(model))


def test_corrupt_file_is_refused(models_dir, tmp_path):
    shutil.copytree(models_dir / "mtcnn", tmp_path / "mtcnn")
    assert weights.verify(tmp_path, model_spec("mtcnn"))
    with open(tmp_path / "mtcnn" / "pnet.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(weights.WeightsError, match="SHA-256"):
        weights.verify(tmp_path, model_spec("mtcnn"))


def test_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(weights.WeightsError, match="models pull"):
        weights.weight_path(tmp_path, model_spec("facenet512"))


def test_download_without_checksum_is_refused(tmp_path):
    with pytest.raises(weights.WeightsError, match="SHA-256"):
        weights.install_arcface(tmp_path, model_spec("arcface"), "https://example.invalid/model.onnx")
