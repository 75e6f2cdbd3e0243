"""The `facesearch` command."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from facesearch.logging import configure_logging
from facesearch.settings import get_settings

app = typer.Typer(help="Face search for photo archives.", no_args_is_help=True)
import_app = typer.Typer(help="Bring photos in.", no_args_is_help=True)
app.add_typer(import_app, name="import")

try:  # model commands live with the models
    from facesearch.cli_models import models_app

    app.add_typer(models_app, name="models")
except ImportError:  # pragma: no cover
    pass


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    configure_logging(get_settings(), "DEBUG" if verbose else "INFO")


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address to serve on")] = "",
    port: Annotated[int, typer.Option(help="Port to serve on")] = 0,
) -> None:
    """Everything in one process: broker, relay, projections, workers and the API."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    typer.echo(f"facesearch on http://{host or settings.api_host}:{port or settings.api_port} (profile {settings.profile.value})")
    uvicorn.run(create_app(settings), host=host or settings.api_host, port=port or settings.api_port, log_level="warning")


def _progress_bar(label: str):
    bar = typer.progressbar(length=0, label=label, show_pos=True)
    state = {"last": 0}

    def update(counts: dict[str, int]) -> None:
        done = counts["stored"] + counts["skipped"] + counts["failed"]
        bar.length = max(counts["discovered"], done, 1)
        bar.update(done - state["last"])
        state["last"] = done

    return bar, update


def _print_result(result) -> None:
    typer.echo(json.dumps({"import_id": str(result.import_id), "status": result.status, **result.counts,
                           **({"reason": result.reason} if result.reason else {})}))
    if result.status == "failed":
        raise typer.Exit(1)


@import_app.command("local")
def import_local(
    folder: Annotated[Path, typer.Argument(help="Folder to import, recursively")],
    owner: Annotated[str, typer.Option(help="The user the photos belong to")] = "local",
) -> None:
    """Import every photo under a local folder."""
    from commands.importers.base import SourceError
    from facesearch.imports import import_local as run
    from facesearch.system import make_app

    settings = get_settings()
    fs_app = make_app(settings)
    bar, update = _progress_bar("importing")
    try:
        with bar:
            result = run(fs_app, settings, str(folder), owner=owner, operator=True, progress=update)
    except SourceError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    _print_result(result)


@import_app.command("resume")
def import_resume() -> None:
    """Resume every import that a crash or a stop left unfinished."""
    from facesearch.imports import resume_open_imports
    from facesearch.system import make_app

    settings = get_settings()
    for result in resume_open_imports(make_app(settings), settings):
        _print_result(result)


@app.command()
def replay(names: Annotated[list[str] | None, typer.Argument(help="Projections to rebuild (default: all)")] = None) -> None:
    """Drop read models and rebuild them from the event store."""
    from facesearch.system import System

    async def run() -> dict[str, int]:
        system = System(get_settings(), start_broker=False)
        try:
            return await system.replay(names)
        finally:
            await system.engine.dispose()
            system.app.close()

    try:
        counts = asyncio.run(run())
    except KeyError as error:
        typer.echo(f"error: {error.args[0]}", err=True)
        raise typer.Exit(2) from None
    for name, count in counts.items():
        typer.echo(f"{name}: rebuilt from {count} events")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What the event store and the read models hold."""
    from facesearch.system import System
    from projections import queries

    async def run() -> dict[str, object]:
        system = System(get_settings(), start_broker=False)
        try:
            await system.prepare_read_models()
            events = await asyncio.to_thread(lambda: system.app.recorder.max_notification_id() or 0)
            return {
                "events": events,
                "photos": await queries.status_counts(system.engine),
                "imports": [
                    {k: row[k] for k in ("id", "source", "status", "discovered", "stored", "skipped", "failed")}
                    for row in await queries.import_rows(system.engine)
                ],
                "projections": {
                    f"{name}:{topic}[{part}]": last for name, topic, part, last, _ in await queries.checkpoint_rows(system.engine)
                },
            }
        finally:
            await system.engine.dispose()
            system.app.close()

    result = asyncio.run(run())
    typer.echo(json.dumps(result, indent=None if as_json else 2))


def _search_deps():
    """Read models and Milvus, without the broker (searching needs neither relay nor workers)."""
    from facesearch.system import make_vector_index
    from projections.db import make_engine

    settings = get_settings()
    return settings, make_engine(settings.resolved_read_model_url()), make_vector_index(settings)


@app.command()
def search(
    image: Annotated[Path, typer.Argument(help="Example photo (JPG, PNG or WEBP)", exists=True, dir_okay=False)],
    threshold: Annotated[float, typer.Option(help="Calibrated similarity to keep a match, 70 to 95 %")] = 85.0,
    top_k: Annotated[int, typer.Option("--top-k", help="Neighbours asked from Milvus")] = 50,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the workers' model)")] = None,
    face: Annotated[int | None, typer.Option(help="Which face of the example, largest first (default 0)")] = None,
    owner: Annotated[str, typer.Option(help="Whose photos to search")] = "local",
    source: Annotated[str | None, typer.Option(help="Only photos from this source")] = None,
    import_id: Annotated[str | None, typer.Option("--import", help="Only photos of this import")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Find the photos showing the person in IMAGE."""
    from dataclasses import asdict

    from facesearch.search import FaceSearcher, SearchFilters, SearchInputError

    async def run():
        settings, engine, index = _search_deps()
        try:
            searcher = FaceSearcher(settings, engine, index)
            return await searcher.search(
                image.read_bytes(), owner, threshold=threshold, top_k=top_k, model=model, face_index=face,
                filters=SearchFilters(source=source, import_id=import_id),
            )
        finally:
            await engine.dispose()
            index.close()

    try:
        result = asyncio.run(run())
    except SearchInputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(asdict(result), default=str))
        return
    q = result.query_face.box
    typer.echo(
        f"model {result.model} ({result.metric}), threshold {result.threshold:g} %, face {result.query_face.face_index} "
        f"of {len(result.example_faces)} at ({q.x1:.0f},{q.y1:.0f})-({q.x2:.0f},{q.y2:.0f}); "
        f"{len(result.photos)} photos from {result.candidates} candidates; "
        f"exact check agrees on {result.agreement.agreeing}/{result.agreement.checked}"
    )
    for photo in result.photos:
        boxes = ", ".join(
            f"({m.box.x1:.0f},{m.box.y1:.0f})-({m.box.x2:.0f},{m.box.y2:.0f}) {m.similarity:.1f} %" for m in photo.faces
        )
        typer.echo(f"{photo.similarity:5.1f} %  {photo.photo_id}  {photo.source}:{photo.source_ref}  {boxes}")


@app.command()
def verify(
    first: Annotated[Path, typer.Argument(help="First photo", exists=True, dir_okay=False)],
    second: Annotated[Path, typer.Argument(help="Second photo", exists=True, dir_okay=False)],
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the workers' model)")] = None,
    threshold: Annotated[float | None, typer.Option(help="Calibrated similarity for 'same', percent (default 85)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Same person or not: the largest face of each photo, by direct distance."""
    from facesearch.search import FaceSearcher, SearchInputError

    async def run():
        settings, engine, index = _search_deps()
        try:
            return await FaceSearcher(settings, engine, index).verify_pair(
                first.read_bytes(), second.read_bytes(), model=model, threshold=threshold
            )
        finally:
            await engine.dispose()

    try:
        verdict = asyncio.run(run())
    except SearchInputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(verdict.to_dict()))
        return
    typer.echo(
        f"{'same' if verdict.same else 'different'}: {verdict.metric} distance {verdict.distance:.4f}, "
        f"similarity {verdict.similarity:.1f} % (threshold {verdict.threshold:g} %, model {verdict.model})"
    )
