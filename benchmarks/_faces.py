"""Real face embeddings of LFW identities (clusters.csv) for the search benchmarks, computed
once per model with the workers' analyzer and cached under var_dir/bench."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesearch.settings import get_settings


def read_clusters(csv_path: Path) -> list[tuple[str, str]]:
    with open(csv_path, newline="") as f:
        return [(row["path"], row["identity"]) for row in csv.DictReader(f)]


def cluster_embeddings(csv_path: Path, root: Path, model: str, limit: int | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """(vectors, paths, identities) of the largest face of each image that has one."""
    from facesearch.services.search import ordered_faces
    from gpu_workers.evaluation import read_rgb
    from gpu_workers.worker import make_analyzer, model_version

    settings = get_settings()
    rows = read_clusters(csv_path)[:limit]
    # Keyed like archive_faces: another model version or flip setting is embedded again.
    tag = f"{model_version(settings.models_dir, model)}-flip{int(settings.embed_flip)}"
    cache = settings.var_dir / "bench" / f"{csv_path.stem}-{model}-{tag}-{len(rows)}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return data["vectors"], list(data["paths"]), list(data["identities"])
    analyzer = make_analyzer(settings.model_copy(update={"worker_use_gpu": False}), model)
    vectors, paths, identities = [], [], []
    for start in range(0, len(rows), 16):
        chunk = rows[start : start + 16]
        images = [read_rgb(root / path) for path, _ in chunk]
        for (path, identity), faces in zip(chunk, analyzer.analyze(images)):
            if faces:
                vectors.append(ordered_faces(faces)[0][1])
                paths.append(path)
                identities.append(identity)
    out = np.stack(vectors).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=out, paths=np.array(paths), identities=np.array(identities))
    return out, paths, identities


@dataclass(frozen=True)
class ArchiveFaces:
    """Every face of every image under a folder of people (`<root>/images/<Person>/<file>`),
    as the product indexes them: `identity[i]` is the folder's person for the image's central
    face (LFW labels that one) and a unique stranger label for any other face in the image."""

    vectors: np.ndarray  # (faces, dim), L2-normalised
    image: np.ndarray  # (faces,) index into `paths`
    central: np.ndarray  # (faces,) bool: the labelled face of its image
    identity: list[str]
    paths: list[str]


def archive_faces(root: Path, model: str, relative_paths: list[str] | None = None) -> ArchiveFaces:
    """Embeds every face of every image with the workers' analyzer (cached under
    var_dir/bench per model version, so a changed model is embedded again)."""
    from gpu_workers.evaluation import central_face, read_rgb
    from gpu_workers.worker import make_analyzer, model_version

    settings = get_settings()
    root = Path(root)
    paths = relative_paths or sorted(
        str(p.relative_to(root)) for p in (root / "images").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    analyzer = make_analyzer(settings.model_copy(update={"worker_use_gpu": False}), model)
    tag = f"{model_version(settings.models_dir, model)}-flip{int(analyzer.embedder.flip)}"
    cache = settings.var_dir / "bench" / f"archive-{root.name}-{model}-{tag}-{len(paths)}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return ArchiveFaces(data["vectors"], data["image"], data["central"], list(data["identity"]), list(data["paths"]))
    vectors, image_of, central, identity = [], [], [], []
    for start in range(0, len(paths), 16):
        chunk = paths[start : start + 16]
        images = [read_rgb(root / p) for p in chunk]
        for offset, (path, img, faces) in enumerate(zip(chunk, images, analyzer.analyze(images))):
            k = central_face(img, [f for f, _ in faces])
            for i, (_, vector) in enumerate(faces):
                vectors.append(vector)
                image_of.append(start + offset)
                central.append(i == k)
                identity.append(Path(path).parent.name if i == k else f"stranger:{path}:{i}")
    out = ArchiveFaces(np.stack(vectors).astype(np.float32), np.array(image_of), np.array(central), identity, paths)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=out.vectors, image=out.image, central=out.central, identity=np.array(identity), paths=np.array(paths))
    return out


@dataclass(frozen=True)
class FolderFaces:
    """Every face the product finds in every image under a folder, with its quality flag:
    `ids[i]` is "<image path>:<face index>", as the product names faces of one photo."""

    vectors: np.ndarray  # (faces, dim), L2-normalised
    low_quality: np.ndarray  # (faces,) bool: small, blurry or a low detector score
    area: np.ndarray  # (faces,) box area in pixels
    ids: list[str]

    def largest_per_image(self) -> FolderFaces:
        """The largest face of each image (the one a portrait is of)."""
        best: dict[str, int] = {}
        for i, face in enumerate(self.ids):
            image = face.rsplit(":", 1)[0]
            if image not in best or self.area[i] > self.area[best[image]]:
                best[image] = i
        keep = sorted(best.values())
        return FolderFaces(self.vectors[keep], self.low_quality[keep], self.area[keep], [self.ids[i] for i in keep])


def folder_faces(root: Path, model: str, relative_paths: list[str] | None = None) -> FolderFaces:
    """Embeds every face of every image under `root`, or of `relative_paths` under it
    (cached under var_dir/bench)."""
    from gpu_workers.evaluation import read_rgb
    from gpu_workers.worker import make_analyzer, model_version

    settings = get_settings()
    root = Path(root)
    paths = relative_paths or sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    analyzer = make_analyzer(settings.model_copy(update={"worker_use_gpu": False}), model)
    tag = f"{model_version(settings.models_dir, model)}-flip{int(analyzer.embedder.flip)}"
    cache = settings.var_dir / "bench" / f"folder-{root.name}-{model}-{tag}-{len(paths)}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return FolderFaces(data["vectors"], data["low_quality"], data["area"], list(data["ids"]))
    vectors, low_quality, area, ids = [], [], [], []
    for start in range(0, len(paths), 8):
        chunk = paths[start : start + 8]
        for path, faces in zip(chunk, analyzer.analyze([read_rgb(root / p) for p in chunk])):
            for i, (face, vector) in enumerate(faces):
                vectors.append(vector)
                low_quality.append(bool(face.quality.flags))
                area.append(face.box.width * face.box.height)
                ids.append(f"{path}:{i}")
    out = FolderFaces(np.stack(vectors).astype(np.float32), np.array(low_quality, dtype=bool), np.array(area), ids)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=out.vectors, low_quality=out.low_quality, area=out.area, ids=np.array(ids))
    return out
