"""Search quality at the thresholds users choose, on people the calibration never saw.

The queries are the people of a clusters file (LFW `clusters.csv`: 79 people, 10 to 20
photos each; the calibration leaves them out). Each query is one photo's labelled face; the
archive holds every other photo's face, plus, with `--distractors DIR`, the faces of another
folder as strangers (archive scale). For each model, and for the cross-check (the first
model's candidates judged by all models together), at 70, 85 and 95 %:

- precision: of the faces kept at the threshold, the share that are the query's person;
- recall: of the query person's other faces in the archive, the share kept;
- false matches per query: faces of other people kept, per search;
- recall@10: of the person's other faces (at most 10), the share among the 10 best answers.

The cross-check judges the first model's candidates by every model's evidence combined (the
sum of their normalised scores, under its own calibration), refusing any match a model finds
a stranger as a pair (gpu_workers/calibration.py `cross_check_accepts`), as the product does.

Searches go through Milvus Lite (HNSW, the product's index code) and are scored with the
product's calibration and cohort normalisation for an archive of that many faces
(gpu_workers/calibration.py), exactly as facesearch/services/search.py scores them.

    python -m benchmarks.search_quality --clusters ../shared/data/lfw/clusters.csv \\
        --root ../shared/data/lfw --distractors ../shared/data/lfw [--models facenet512,arcface]

In an LFW-style folder (images/<Person>/<photo>) each photo's central face is indexed,
labelled by its folder (LFW photos often show other people too, unlabelled: they are left
out rather than counted as strangers); in any other folder every face is a stranger.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._common import machine, print_json, print_table
from benchmarks._faces import archive_faces, read_clusters
from domain.similarity import EXPAND_MAX_SEEDS, Calibration, expanded_archive_faces, expansion_seeds
from facesearch.settings import get_settings
from facesearch.system import index_config
from gpu_workers.calibration import (
    ScoreCalibration,
    cross_check_accepts,
    load_joint_calibration,
    load_score_calibration,
)
from projections.vectors import FaceVectorIndex, VectorHit

THRESHOLDS = (70.0, 85.0, 95.0)


@dataclass
class Archive:
    """The indexed faces of one model (row k of every model is the same face)."""

    vectors: np.ndarray
    identity: np.ndarray
    queries: np.ndarray  # row numbers of the query faces


def build_archive(model: str, clusters: Path, root: Path, distractors: Path | None) -> Archive:
    query_paths = {path for path, _ in read_clusters(clusters)}
    # With distractors from the same folder, the whole folder (cached once); else the queries' photos.
    faces = archive_faces(root, model, None if distractors is not None else sorted(query_paths))
    paths = np.array(faces.paths)[faces.image]
    is_query = faces.central & np.isin(paths, list(query_paths))
    vectors, identity = [faces.vectors[is_query]], [np.array(faces.identity)[is_query]]
    if distractors is not None:
        more = faces if Path(distractors).resolve() == Path(root).resolve() else archive_faces(distractors, model)
        more_paths = np.array(more.paths)[more.image]
        person_folders = np.array([Path(p).parent.name != "images" for p in more_paths])
        keep = ~np.isin(more_paths, list(query_paths)) & (more.central | ~person_folders)
        names = np.where(person_folders, np.array(more.identity), np.array([f"stranger:{i}" for i in range(len(more_paths))]))
        vectors.append(more.vectors[keep])
        identity.append(names[keep])
    return Archive(np.concatenate(vectors), np.concatenate(identity), np.arange(int(is_query.sum())))


class ExactIndex:
    """Exact nearest neighbours in memory, with the answers `FaceVectorIndex.search` gives
    (`--index exact`: no Milvus, for quick runs and the test suite)."""

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}
        self.index_type = "exact"

    def upsert(self, model: str, rows: list[dict]) -> None:
        self.vectors[model] = np.array([r["vector"] for r in rows], dtype=np.float32)

    def search(self, model: str, vector: np.ndarray, limit: int, filter_expr: str = "") -> list[VectorHit]:
        cosines = self.vectors[model] @ np.asarray(vector, dtype=np.float32)
        best = np.argsort(-cosines)[:limit]
        return [VectorHit(f"{i}:0", str(i), 0, "local", float(cosines[i])) for i in best]

    def close(self) -> None:
        pass


@dataclass
class Counts:
    kept_same: int = 0
    kept_other: int = 0
    relevant: int = 0

    def row(self, queries: int) -> tuple[float | None, float | None, float]:
        kept = self.kept_same + self.kept_other
        return (
            round(self.kept_same / kept, 4) if kept else None,
            round(self.kept_same / self.relevant, 4) if self.relevant else None,
            round(self.kept_other / queries, 4),
        )


def search_rows(
    index: FaceVectorIndex | ExactIndex, model: str, vectors: np.ndarray, calibration: ScoreCalibration, q: int, n: int,
    top_k: int, expand_seeds: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The search the product makes for query row `q` (facesearch/services/search.py: nearest faces,
    then query expansion from the near-certain ones): candidate rows (never `q`), their
    normalised scores, and the archive size their percentages are for."""
    def nearest(row: int) -> list[int]:
        return [int(h.photo_id) for h in index.search(model, vectors[row], top_k, 'owner == "bench"') if int(h.photo_id) != q]

    rows = np.array(nearest(q), dtype=int)
    if not len(rows):
        return rows, np.zeros(0), n
    scores = calibration.scores(vectors[q], vectors[rows])
    seeds = expansion_seeds(list(zip(rows.tolist(), calibration.percents(scores, n))), limit=expand_seeds)
    if not seeds:
        return rows, scores, n
    rows = np.array(list(dict.fromkeys([*rows.tolist(), *(r for seed in seeds for r in nearest(seed))])), dtype=int)
    position = {r: i for i, r in enumerate(rows.tolist())}
    scores, _ = calibration.expanded_scores(vectors[q], vectors[rows], [position[seed] for seed in seeds])
    return rows, scores, expanded_archive_faces(n, len(seeds))


def evaluate(
    models: list[str], archives: dict[str, Archive], calibrations: dict[str, ScoreCalibration], joint: Calibration | None,
    index: FaceVectorIndex | ExactIndex, top_k: int, expand_seeds: int = EXPAND_MAX_SEEDS,
) -> dict[str, dict]:
    primary = models[0]
    identity = archives[primary].identity
    n = len(identity)
    counts = {name: {p: Counts() for p in THRESHOLDS} for name in [*models, *(["cross-check"] if joint else [])]}
    recall10 = {m: [] for m in models}
    for q in archives[primary].queries:
        same = identity == identity[q]
        same[q] = False
        relevant = int(same.sum())
        percents = {}
        for model in models:
            archive, calibration = archives[model], calibrations[model]
            rows, scores, among = search_rows(index, model, archive.vectors, calibration, q, n, top_k, expand_seeds)
            order = rows[np.argsort(-scores)]
            recall10[model].append(same[order[:10]].sum() / min(10, relevant) if relevant else 1.0)
            percents[model] = dict(zip(rows.tolist(), calibration.percents(scores, among)))
            if model == primary:
                candidates, candidates_among = rows, among
            for p in THRESHOLDS:
                kept = [r for r in rows if percents[model][r] >= p]
                _count(counts[model][p], same, kept, relevant)
        if joint is None:
            continue
        if len(candidates):  # the first model's candidates, judged by every model together
            per_model = np.stack([
                calibrations[m].scores(archives[m].vectors[q], archives[m].vectors[candidates]) for m in models
            ])
            pair = [[calibrations[m].calibration.percent(float(z)) for z in per_model[i]] for i, m in enumerate(models)]
            combined = [joint.percent(float(z), candidates_among) for z in per_model.sum(axis=0)]
            for p in THRESHOLDS:
                kept = [int(r) for j, r in enumerate(candidates) if cross_check_accepts(combined[j], [pp[j] for pp in pair], p)]
                _count(counts["cross-check"][p], same, kept, relevant)
        else:
            for p in THRESHOLDS:
                _count(counts["cross-check"][p], same, [], relevant)
    queries = len(archives[primary].queries)
    out = {}
    for name, by_threshold in counts.items():
        out[name] = {
            f"{p:g}": dict(zip(("precision", "recall", "false_matches_per_query"), c.row(queries))) for p, c in by_threshold.items()
        }
        out[name]["recall_at_10"] = round(float(np.mean(recall10[name])), 4) if name in recall10 else None
    return out


def _count(c: Counts, same: np.ndarray, kept: list[int], relevant: int) -> None:
    hits = int(same[kept].sum()) if kept else 0
    c.kept_same += hits
    c.kept_other += len(kept) - hits
    c.relevant += relevant


def index_faces(index: FaceVectorIndex | ExactIndex, model: str, archive: Archive) -> None:
    rows = [
        {"id": f"{i}:0", "photo_id": str(i), "owner": "bench", "source": "local", "import_id": "", "imported_at": 0,
         "vector": v.tolist()}
        for i, v in enumerate(archive.vectors)
    ]
    if isinstance(index, ExactIndex):
        index.upsert(model, rows)
        return
    for start in range(0, len(rows), 2000):
        index.upsert(model, rows[start : start + 2000])


def main(argv: list[str] | None = None) -> dict:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=Path, default=settings.data_dir / "lfw" / "clusters.csv")
    parser.add_argument("--root", type=Path, default=settings.data_dir / "lfw")
    parser.add_argument("--distractors", type=Path, default=None)
    parser.add_argument("--models", default="facenet512,arcface", help="Comma-separated; the first is the searched one")
    parser.add_argument("--top-k", type=int, default=settings.search_top_k)
    parser.add_argument("--index", default="HNSW", help="HNSW, IVF_FLAT, FLAT (Milvus Lite) or exact (in memory)")
    parser.add_argument("--expand-seeds", type=int, default=settings.search_expand_seeds,
                        help="query expansion from up to this many near-certain matches, as the product (0: off)")
    args = parser.parse_args(argv)

    models = [m for m in args.models.split(",") if m]
    calibrations = {}
    for model in models:
        calibration = load_score_calibration(Path(settings.models_dir) / model)
        if calibration is None:
            raise SystemExit(f"{model} has no calibration: run `facesearch models calibrate --embedder {model}`")
        calibrations[model] = calibration
    archives = {m: build_archive(m, args.clusters, args.root, args.distractors) for m in models}
    sizes = {m: len(a.identity) for m, a in archives.items()}
    if len(set(sizes.values())) != 1:
        raise SystemExit(f"the models found different faces ({sizes}): they must share one detector")
    work = Path(tempfile.mkdtemp(prefix="fs-quality-"))
    index = ExactIndex() if args.index == "exact" else FaceVectorIndex(
        str(work / "milvus.db"), index_config(settings.model_copy(update={"milvus_index_type": args.index}))
    )
    try:
        for model, archive in archives.items():
            index_faces(index, model, archive)
        joint = load_joint_calibration(settings.models_dir, models) if len(models) > 1 else None
        if len(models) > 1 and joint is None:
            raise SystemExit(f"no cross-check calibration for {', '.join(models)}: run `facesearch models calibrate`")
        quality = evaluate(models, archives, calibrations, joint, index, args.top_k, args.expand_seeds)
    finally:
        index.close()
        shutil.rmtree(work, ignore_errors=True)

    primary = archives[models[0]]
    result = {
        "benchmark": "search_quality", "models": models, "index": index.index_type, "archive_faces": len(primary.identity),
        "queries": len(primary.queries), "people": len(set(primary.identity[primary.queries])), "top_k": args.top_k,
        "expand_seeds": args.expand_seeds,
        "calibrations": {m: c.calibration.fitted_on for m, c in calibrations.items()}, "quality": quality, "machine": machine(),
    }
    where = "in memory (exact)" if args.index == "exact" else f"in Milvus Lite ({index.index_type})"
    print(f"{machine()}; {result['queries']} queries ({result['people']} people) among {result['archive_faces']} faces {where}, top {args.top_k}, query expansion from up to {args.expand_seeds} seeds")
    rows = []
    for name, q in quality.items():
        label = name if name != "cross-check" else f"cross-check ({' + '.join(models)})"
        for p in THRESHOLDS:
            r = q[f"{p:g}"]
            rows.append([label, f"{p:g} %", r["precision"], r["recall"], r["false_matches_per_query"], q["recall_at_10"] or "-"])
    print_table(["model", "threshold", "precision", "recall", "false matches / query", "recall@10"], rows)
    print_json(result)
    return result


if __name__ == "__main__":
    main()
