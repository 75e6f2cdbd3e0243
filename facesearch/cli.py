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
