"""The `facesearch` command."""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from commands.importers import SOURCES
from commands.importers.base import SourceSpec
from facesearch.infra.logging import configure_logging
from facesearch.settings import get_settings

app = typer.Typer(help="Face search for photo archives.", no_args_is_help=True)
import_app = typer.Typer(help="Bring photos in.", no_args_is_help=True)
app.add_typer(import_app, name="import")

try:  # model commands live with the models
    from facesearch.cli.models import models_app

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


class Role(str, Enum):
    relay = "relay"
    projections = "projections"
    worker = "worker"


@app.command()
def run(
    role: Annotated[Role, typer.Argument(help="The part to run in this process")],
    metrics_port: Annotated[int, typer.Option(help="Serve /metrics on this port (0: none)")] = 0,
) -> None:
    """One part of the system in this process (production: one container each).

    relay: the outbox relay and the reconciler; projections: every read model and the
    Milvus index; worker: face analysis on commands from the broker."""
    import signal

    from facesearch.infra import metrics
    from facesearch.system import System

    settings = get_settings().model_copy(update={"process_role": role.value})
    if metrics_port:
        metrics.serve(metrics_port)

    async def main() -> None:
        if role is Role.worker:
            from facesearch.worker_process import run_worker

            await run_worker(settings)
            return
        system = System(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        is_relay = role is Role.relay
        await system.start(relay=is_relay, projections=not is_relay, reconcile=is_relay, workers=False)
        typer.echo(f"facesearch {role.value} running")
        try:
            await stop.wait()
        finally:
            await system.stop()

    asyncio.run(main())


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


# Whose archive: every command that takes --owner resolves it here, to the user id the API
# scopes by (a name that is no account would store photos no one can see).
OwnerOption = Annotated[str | None, typer.Option(
    "--owner", metavar="NAME", help="The account (user name) whose archive this is (default: the only account)",
)]


def _owner(name: str | None) -> str:
    """The id of the account named NAME, or of the only account; exit 2 with a message otherwise."""
    from facesearch.cli.owners import OwnerError, resolve_owner

    try:
        return resolve_owner(get_settings(), name).id
    except OwnerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


def _import_folder(folder: Path, owner: str | None) -> None:
    from commands.importers.base import SourceError
    from facesearch.services.imports import import_local as run
    from facesearch.system import make_app

    owner = _owner(owner)
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


def _token_from(token_env: str | None, label: str, needed: bool) -> str | None:
    """The token from the named environment variable, or typed at a hidden prompt; never an
    argument (it would land in the shell's history and in `ps`)."""
    import os

    if token_env:
        token = os.environ.get(token_env, "").strip()
        if not token:
            typer.echo(f"error: the environment variable {token_env} is not set or empty", err=True)
            raise typer.Exit(2)
        return token
    if not needed:
        return None
    return typer.prompt(f"{label} access token (not shown)", hide_input=True).strip() or None


def _import_remote(source: str, link: str, token_env: str | None, owner: str | None) -> None:
    from commands.importers import SOURCES
    from commands.importers.base import SourceError
    from facesearch.services.imports import ImportConfigError, credential_store, needs_token, start_import
    from facesearch.system import make_app

    owner = _owner(owner)
    settings = get_settings()
    spec = SOURCES[source]
    try:
        public = not needs_token(link)  # a bad link is refused before anything else
        store = None if public and not token_env else credential_store(settings)
        saved = store is not None and spec.provider is not None and store.active(owner, spec.provider.name) is not None
        token = _token_from(token_env, spec.label, needed=not public and not saved)
        fs_app = make_app(settings)
        bar, update = _progress_bar("importing")
        with bar:
            result = start_import(fs_app, settings, owner=owner, link=link, token=token, source=source,
                                  credentials=store, progress=update)
    except (SourceError, ImportConfigError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    _print_result(result)


TOKEN_ENV_HELP = "Read the access token from this environment variable (otherwise the saved sign-in, or a hidden prompt)"
OWNER_HELP = "The account (user name) whose archive this is (default: the only account)"


def _add_import_command(spec: SourceSpec) -> None:
    """`facesearch import <source>`, from the source's spec. Defaults carry the typer
    parameters: annotations here are strings, and the help text is the spec's."""
    if spec.kind == "folder":
        def import_folder(
            folder: Path = typer.Argument(..., help=spec.target_help),
            owner: str | None = typer.Option(None, "--owner", metavar="NAME", help=OWNER_HELP),
        ) -> None:
            _import_folder(folder, owner)

        import_app.command(spec.name, help=spec.summary)(import_folder)
    elif spec.kind == "link":
        def import_link(
            link: str = typer.Argument(..., help=spec.target_help),
            token_env: str | None = typer.Option(None, "--token-env", metavar="VAR", help=TOKEN_ENV_HELP),
            owner: str | None = typer.Option(None, "--owner", metavar="NAME", help=OWNER_HELP),
        ) -> None:
            _import_remote(spec.name, link, token_env, owner)

        import_app.command(spec.name, help=spec.summary)(import_link)


for _spec in SOURCES.values():  # uploads come from the browser: no command
    _add_import_command(_spec)


@import_app.command("cancel")
def import_cancel(import_id: Annotated[str, typer.Argument(help="The import's id (see `facesearch import list`)")]) -> None:
    """Cancel an import; a run in progress anywhere stops at its next photo."""
    from uuid import UUID

    from facesearch.services.imports import ImportNotFound, cancel_import
    from facesearch.system import make_app

    try:
        result = cancel_import(make_app(get_settings()), UUID(import_id))
    except (ValueError, ImportNotFound) as error:
        typer.echo(f"error: {error if isinstance(error, ImportNotFound) else 'not an import id'}", err=True)
        raise typer.Exit(2) from None
    _print_result(result)


@import_app.command("list")
def import_list(
    owner: Annotated[str | None, typer.Option(metavar="NAME", help="Only this account's imports (default: everyone's)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every import job with its status and counts, oldest first."""
    from facesearch.services.imports import list_imports
    from facesearch.system import make_app

    # Unlike the other commands, no name means every account's jobs (the operator's view).
    for job in list_imports(make_app(get_settings()), _owner(owner) if owner is not None else None):
        row = {"import_id": str(job.import_id), "owner": job.owner, "source": job.source, "target": job.target,
               "status": job.status, **job.counts}
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            c = job.counts
            typer.echo(f"{job.import_id}  {job.status:<9}  {job.source:<6}  stored {c['stored']}/{c['discovered']}, "
                       f"skipped {c['skipped']}, failed {c['failed']}  {job.target}")


@import_app.command("resume")
def import_resume() -> None:
    """Resume every import that a crash or a stop left unfinished."""
    from facesearch.services.imports import resume_open_imports
    from facesearch.system import make_app

    settings = get_settings()
    for result in resume_open_imports(make_app(settings), settings):
        _print_result(result)


@app.command()
def replay(names: Annotated[list[str] | None, typer.Argument(help="Projections to rebuild (default: all)")] = None) -> None:
    """Drop read models and rebuild them from the event store."""
    from facesearch.system import UnknownProjection, offline_system

    async def run() -> dict[str, int]:
        async with offline_system(get_settings()) as system:
            return await system.replay(names)

    try:
        counts = asyncio.run(run())
    except UnknownProjection as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    for name, count in counts.items():
        typer.echo(f"{name}: rebuilt from {count} events")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What the event store and the read models hold."""
    from facesearch.system import offline_system
    from projections import queries

    async def run() -> dict[str, object]:
        async with offline_system(get_settings()) as system:
            await system.prepare_read_models()
            events = await asyncio.to_thread(lambda: system.app.recorder.max_notification_id() or 0)
            return {
                "events": events,
                "photos": await queries.status_counts(system.engine),
                # Per configured model, faces embedded of faces detected: a model added to an
                # archive fills in (commands/reembedding.py) until the two are equal.
                "embeddings": await system.embedding_progress(),
                "imports": [
                    {k: row[k] for k in ("id", "source", "status", "discovered", "stored", "skipped", "failed")}
                    for row in await queries.imports_oldest_first(system.engine)
                ],
                "projections": {
                    f"{name}:{topic}[{part}]": last for name, topic, part, last, _ in await queries.checkpoint_rows(system.engine)
                },
            }

    result = asyncio.run(run())
    typer.echo(json.dumps(result, indent=None if as_json else 2))


def _search_deps():
    """Read models and Milvus, without the broker (searching needs neither relay nor workers)."""
    from facesearch.system import make_vector_index
    from projections.db import make_engine

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return settings, make_engine(settings.resolved_read_model_url()), make_vector_index(settings)


@app.command()
def search(
    image: Annotated[Path, typer.Argument(help="Example photo with a face", exists=True, dir_okay=False)],
    threshold: Annotated[float, typer.Option(help="Calibrated similarity to keep a match, 70 to 95 %")] = 85.0,
    top_k: Annotated[int, typer.Option("--top-k", help="Neighbours asked from Milvus")] = 50,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the workers' model)")] = None,
    face: Annotated[int | None, typer.Option(help="Which face of the example, largest first (default 0)")] = None,
    owner: OwnerOption = None,
    source: Annotated[str | None, typer.Option(help="Only photos from this source")] = None,
    import_id: Annotated[str | None, typer.Option("--import", help="Only photos of this import")] = None,
    both_models: Annotated[bool, typer.Option("--both-models", help="Keep only matches every configured model accepts")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Find the photos showing the person in IMAGE (works while `facesearch up` runs)."""
    from dataclasses import asdict

    from facesearch.services.search import FaceSearcher, SearchFilters, SearchInputError, SearchUnavailable

    owner = _owner(owner)

    async def run():
        settings, engine, index = _search_deps()
        try:
            searcher = FaceSearcher(settings, engine, index)
            return await searcher.search(
                image.read_bytes(), owner, threshold=threshold, top_k=top_k, model=model, face_index=face,
                filters=SearchFilters(source=source, import_id=import_id), require_all_models=both_models,
            )
        finally:
            await engine.dispose()
            index.shutdown()

    try:
        result = asyncio.run(run())
    except (SearchInputError, SearchUnavailable) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(asdict(result), default=str))
        return
    q = result.query_face.box
    typer.echo(
        f"model {result.model} ({result.metric}), threshold {result.threshold:g} %, face {result.query_face.face_index} "
        f"of {len(result.example_faces)} at ({q.x1:.0f},{q.y1:.0f})-({q.x2:.0f},{q.y2:.0f}); "
        f"{len(result.photos)} photos from {result.candidates} candidates among {result.archive_faces} faces; "
        f"checked by {', '.join(result.models)}{' (all must agree)' if result.require_all_models else ''}"
    )
    for photo in result.photos:
        for m in photo.faces:
            checks = "  ".join(
                f"{v.model}: {'yes' if v.same else 'no' if v.same is not None else 'not embedded'}"
                + (f" {v.similarity:.1f} % ({v.metric} {v.raw:.4f})" if v.similarity is not None else "")
                for v in m.verdicts
            )
            person = f"  person {m.person_name or m.person_id}" if m.person_id else ""
            typer.echo(
                f"{m.similarity:5.1f} %  {photo.photo_id}  {photo.source}:{photo.source_ref}  "
                f"({m.box.x1:.0f},{m.box.y1:.0f})-({m.box.x2:.0f},{m.box.y2:.0f})  {checks}{person}"
            )


@app.command()
def verify(
    first: Annotated[Path, typer.Argument(help="First photo", exists=True, dir_okay=False)],
    second: Annotated[Path, typer.Argument(help="Second photo", exists=True, dir_okay=False)],
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the workers' model)")] = None,
    threshold: Annotated[float | None, typer.Option(help="Calibrated similarity for 'same', percent (default 85)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Same person or not: the largest face of each photo, by direct distance."""
    from facesearch.services.search import FaceSearcher, SearchInputError, SearchUnavailable

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
    except (SearchInputError, SearchUnavailable) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(verdict.to_dict()))
        return
    typer.echo(
        f"{'same person' if verdict.same else 'different people'}: similarity {verdict.similarity:.1f} % "
        f"(threshold {verdict.threshold:g} %), {verdict.metric} distance {verdict.distance:.4f}, model {verdict.model}"
    )


# People: clustering and corrections ----------------------------------------------------------

people_app = typer.Typer(help="People: the faces grouped by who they are, and corrections.", no_args_is_help=True)
app.add_typer(people_app, name="people")

PeopleOwner = OwnerOption
PeopleModel = Annotated[str | None, typer.Option(help="Embedding model (default: the workers' model)")]


def _parse_params(pairs: list[str]) -> dict[str, object]:
    """`key=value` algorithm options: integers, floats, true/false, or text."""
    out: dict[str, object] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {item!r}")
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
            continue
        for kind in (int, float):
            try:
                out[key] = kind(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


@app.command()
def cluster(
    algorithm: Annotated[str | None, typer.Option(help="hdbscan (default), dbscan, kmeans or agglomerative")] = None,
    model: PeopleModel = None,
    owner: PeopleOwner = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Algorithm option key=value (repeatable): "
                     "hdbscan k, min_cluster_size; dbscan eps, min_samples; kmeans k; agglomerative distance, linkage")] = None,
    percent: Annotated[float | None, typer.Option(help="Calibrated similarity for 'same person' (default 85)")] = None,
    incremental: Annotated[bool, typer.Option("--incremental", help="Only attach faces new since the last run to "
                                              "existing people (nearest neighbours in Milvus), no re-clustering")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Group the owner's faces into people (a full re-run keeps every correction)."""
    from dataclasses import asdict

    from commands.clustering import ClusteringError
    from facesearch.services.people import attach_new_faces, run_clustering
    from facesearch.system import offline_system

    owner = _owner(owner)

    async def run():
        async with offline_system(get_settings()) as system:
            await system.prepare_read_models()
            if incremental:
                return await attach_new_faces(system, owner, model, percent=percent)
            return await run_clustering(system, owner, model, algorithm, _parse_params(param or []), percent=percent)

    try:
        result = asyncio.run(run())
    except ClusteringError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if incremental:
        row = {"attached": sum(len(v) for v in result.values()), "people": len(result)}
        typer.echo(json.dumps(row) if as_json else f"{row['attached']} new faces joined {row['people']} people")
        return
    if as_json:
        typer.echo(json.dumps(asdict(result)))
        return
    typer.echo(f"{result.algorithm} over {result.faces} faces ({result.model}): {result.people} people, "
               f"{result.attached} faces joined edited people, {result.unassigned} unassigned, {result.seconds:.1f} s")


def _correct(action, *args):
    from domain.people import InvalidCorrection, PersonNotFound
    from facesearch.system import make_app

    fs_app = make_app(get_settings())
    try:
        return action(fs_app, *args)
    except (InvalidCorrection, PersonNotFound) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        fs_app.close()


def _model(model: str | None) -> str:
    return model or get_settings().embedder


@people_app.command("list")
def people_list(owner: PeopleOwner = None, model: PeopleModel = None,
                as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every person, largest first (from the people read model)."""
    from projections.db import make_engine
    from projections.people import list_people

    owner = _owner(owner)

    async def run():
        engine = make_engine(get_settings().resolved_read_model_url())
        try:
            return await list_people(engine, owner, _model(model))
        finally:
            await engine.dispose()

    for row in asyncio.run(run()):
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            typer.echo(f"{row['id']}  {row['size']:>5}  {'edited' if row['edited'] else 'auto  '}  "
                       f"{row['name'] or '-'}  (face {row['representative_face_id']})")


@people_app.command("name")
def people_name(person: str, name: str, owner: PeopleOwner = None, model: PeopleModel = None) -> None:
    """Name a person."""
    from commands.people import name_person

    _correct(name_person, _owner(owner), _model(model), person, name)


@people_app.command("merge")
def people_merge(person: str, other: str, owner: PeopleOwner = None, model: PeopleModel = None) -> None:
    """OTHER's faces join PERSON; OTHER is gone."""
    from commands.people import merge_people

    _correct(merge_people, _owner(owner), _model(model), person, other)


@people_app.command("move")
def people_move(
    face: Annotated[str, typer.Argument(help="Face id: <photo id>:<face index>")],
    to: Annotated[str | None, typer.Option(help="Person to move it to (default: a new person)")] = None,
    owner: PeopleOwner = None, model: PeopleModel = None,
) -> None:
    """Move a face to another person (it stays there through every re-run)."""
    from commands.people import move_face

    typer.echo(_correct(move_face, _owner(owner), _model(model), face, to))


@people_app.command("not")
def people_not(face: str, person: str, owner: PeopleOwner = None, model: PeopleModel = None) -> None:
    """Mark a face as "not this person": it leaves and never joins that person again."""
    from commands.people import reject_face

    _correct(reject_face, _owner(owner), _model(model), face, person)


@people_app.command("split")
def people_split(person: str, faces: Annotated[list[str], typer.Argument(help="Face ids that form the new person")],
                 owner: PeopleOwner = None, model: PeopleModel = None) -> None:
    """Split a person: FACES leave it as a new person (its id is printed)."""
    from commands.people import split_person

    typer.echo(_correct(split_person, _owner(owner), _model(model), person, faces))
