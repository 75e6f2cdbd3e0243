"""The GraphQL schema: queries read the read models (always as the signed-in user),
mutations send commands, subscriptions stream progress.

Resolvers are thin: they call `api.queries` (read side), the application service or the
import runner (write side), and map rows to types.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from enum import Enum
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import strawberry
from eventsourcing.application import AggregateNotFoundError
from graphql import GraphQLError
from starlette.requests import HTTPConnection
from strawberry.scalars import JSON
from strawberry.types import Info

from api import queries
from api.cpu import cpu_slots_for
from api.gql.context import Context, SignedInContext, make_loaders
from api.gql.errors import Schema
from api.gql.limits import limit_extensions
from api.imports import ImportRefused
from commands.images import FORMATS, MIME_TYPES_IN_ORDER, SUFFIXES_IN_ORDER
from commands.importers import SOURCES
from projections.vectors import VectorIndexUnavailable

MAX_PAGE = 200


def _ctx(info: Info) -> SignedInContext:
    ctx: Context = info.context
    if ctx.user is None:  # the HTTP gate already refuses these; this guards websockets too
        raise GraphQLError("sign in first", extensions={"code": "UNAUTHENTICATED"})
    return cast(SignedInContext, ctx)  # context_for makes the loaders with the user


# The two source enums are built from the sources' specs (values keep their names: VK,
# YANDEX_DISK, LOCAL, UPLOAD), so a new source needs no entry here.
if TYPE_CHECKING:
    class Source(Enum): ...

    class ImportSource(Enum): ...
else:
    Source = strawberry.enum(Enum("Source", {s.graphql_name: s.name for s in SOURCES.values()}),
                             description="Where a photo came from")
    ImportSource = strawberry.enum(
        Enum("ImportSource", {s.graphql_name: s.name for s in SOURCES.values() if s.startable}))


@strawberry.type(description="A photo source this server imports from (commands/importers: SOURCES)")
class SourceInfo:
    name: str = strawberry.field(description="The source's name: a job's source, `facesearch import NAME`, exports")
    value: Source = strawberry.field(description="Its value in the Source enum")
    label: str = strawberry.field(description="Its label in English; the client words the sources it knows itself")
    kind: str = strawberry.field(description="How a job of it starts: link, folder or upload")


@strawberry.type(description="The photo formats uploads, imports and search take (commands/images.py: FORMATS)")
class PhotoFormats:
    labels: list[str] = strawberry.field(description="As users know them: JPG, PNG, WebP, HEIC")
    mime_types: list[str]
    suffixes: list[str] = strawberry.field(description="File names that say a photo, for a file picker")


@strawberry.enum
class PhotoStatus(Enum):
    IMPORTED = "imported"
    ANALYSED = "analysed"
    NO_FACES = "no_faces"
    REJECTED = "rejected"


@strawberry.enum
class ImportStatus(Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@strawberry.type
class User:
    id: strawberry.ID
    username: str
    role: str


@strawberry.type(description="A face box in the photo's pixels")
class Box:
    x1: float
    y1: float
    x2: float
    y2: float


@strawberry.type
class Face:
    id: strawberry.ID
    photo_id: strawberry.ID
    face_index: int
    box: Box
    score: float = strawberry.field(description="Detector confidence, 0 to 1")
    size_px: float
    blur: float
    flags: list[str] = strawberry.field(description="Quality flags: small, blurry, low_score")
    detector: str
    models: list[str] = strawberry.field(description="Embedding models that embedded this face")
    processed_at: str
    crop_url: str

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Face:
        return cls(
            id=strawberry.ID(r["id"]), photo_id=strawberry.ID(r["photo_id"]), face_index=r["face_index"],
            box=Box(x1=r["x1"], y1=r["y1"], x2=r["x2"], y2=r["y2"]), score=r["score"], size_px=r["size_px"],
            blur=r["blur"], flags=[f for f in (r["flags"] or "").split(",") if f], detector=r["detector"],
            models=[m for m in (r["models"] or "").split(",") if m], processed_at=r["processed_at"],
            crop_url=f"/api/faces/{r['id']}/crop",
        )

    @strawberry.field
    async def photo(self, info: Info) -> Photo | None:
        row = await _ctx(info).loaders.photos.load(str(self.photo_id))
        return Photo.from_row(row) if row else None

    @strawberry.field(description="The person this face belongs to (for the workers' model), or null")
    async def person(self, info: Info) -> Person | None:
        from projections.people import person_of_faces, person_row

        ctx = _ctx(info)
        model = _model(ctx, None)
        found = await person_of_faces(ctx.system.engine, ctx.user.id, model, [str(self.id)])
        if str(self.id) not in found:
            return None
        row = await person_row(ctx.system.engine, ctx.user.id, model, found[str(self.id)])
        return Person.from_row(row) if row else None


@strawberry.type
class PhotoSourceRecord:
    source: Source
    source_ref: str
    import_id: strawberry.ID | None
    added_at: str


@strawberry.type
class ImportProblem:
    source_ref: str
    kind: str
    reason: str = strawberry.field(description="English, for logs; clients word `code` and `params`")
    code: str | None = strawberry.field(default=None, description="Stable: EMPTY_FILE, TOO_MANY_PIXELS, checksum_mismatch, …")
    params: JSON = strawberry.field(default_factory=dict, description="The values the code's message quotes")


@strawberry.type
class ImportJob:
    id: strawberry.ID
    source: Source
    target: str
    status: ImportStatus
    discovered: int
    stored: int
    duplicates: int
    skipped: int
    failed: int
    reason: str | None
    created_at: str
    updated_at: str
    reason_code: str | None = strawberry.field(default=None, description="Why it failed, stable (source_unavailable, …)")
    reason_params: JSON = strawberry.field(default_factory=dict)

    @strawberry.field(description="Whether retryImport can run it again (a failed or cancelled link or folder job)")
    def can_retry(self) -> bool:
        return self.status in (ImportStatus.FAILED, ImportStatus.CANCELLED) and SOURCES[self.source.value].startable

    @strawberry.field(description="Whether cancelImport can stop it (it is running)")
    def can_cancel(self) -> bool:
        return self.status == ImportStatus.RUNNING

    @strawberry.field(description="Settled items (stored, skipped, failed) over discovered, 0 to 1")
    def progress(self) -> float:
        done = self.stored + self.skipped + self.failed
        if self.status != ImportStatus.RUNNING:
            return 1.0
        return done / self.discovered if self.discovered else 0.0

    @strawberry.field
    async def problems(self, info: Info) -> list[ImportProblem]:
        rows = await _ctx(info).loaders.problems.load(str(self.id))
        return [ImportProblem(source_ref=r["source_ref"], kind=r["kind"], reason=r["reason"], code=r.get("code"),
                              params=cast(JSON, r.get("params") or {})) for r in rows]

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> ImportJob:
        return cls(
            id=strawberry.ID(r["id"]), source=Source(r["source"]), target=r["target"], status=ImportStatus(r["status"]),
            discovered=r["discovered"], stored=r["stored"], duplicates=r["duplicates"], skipped=r["skipped"],
            failed=r["failed"], reason=r["reason"], created_at=r["created_at"], updated_at=r["updated_at"],
            reason_code=r.get("reason_code"), reason_params=cast(JSON, r.get("reason_params") or {}),
        )


@strawberry.type
class Photo:
    id: strawberry.ID
    source: Source
    source_ref: str
    import_id: strawberry.ID | None
    status: PhotoStatus
    reject_reason: str | None
    size: int
    width: int | None
    height: int | None
    mime_type: str | None
    face_count: int
    detector: str | None
    imported_at: str
    analysed_at: str | None
    image_url: str
    thumbnail_url: str

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Photo:
        return cls(
            id=strawberry.ID(r["id"]), source=Source(r["source"]), source_ref=r["source_ref"],
            import_id=strawberry.ID(r["import_id"]) if r["import_id"] else None, status=PhotoStatus(r["status"]),
            reject_reason=r["reject_reason"], size=r["size"], width=r["width"], height=r["height"],
            mime_type=r["mime_type"], face_count=r["face_count"], detector=r["detector"],
            imported_at=r["imported_at"], analysed_at=r["analysed_at"],
            image_url=f"/api/photos/{r['id']}/original", thumbnail_url=f"/api/photos/{r['id']}/thumbnail",
        )

    @strawberry.field
    async def faces(self, info: Info) -> list[Face]:
        return [Face.from_row(r) for r in await _ctx(info).loaders.faces.load(str(self.id))]

    @strawberry.field(description="Every place these bytes were found (a photo found twice has two)")
    async def sources(self, info: Info) -> list[PhotoSourceRecord]:
        rows = await _ctx(info).loaders.sources.load(str(self.id))
        return [
            PhotoSourceRecord(source=Source(r["source"]), source_ref=r["source_ref"],
                              import_id=strawberry.ID(r["import_id"]) if r["import_id"] else None, added_at=r["added_at"])
            for r in rows
        ]

    @strawberry.field(name="importJob")
    async def import_job(self, info: Info) -> ImportJob | None:
        if not self.import_id:
            return None
        row = await _ctx(info).loaders.imports.load(str(self.import_id))
        return ImportJob.from_row(row) if row else None


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class PhotoEdge:
    cursor: str
    node: Photo


@strawberry.type
class PhotoConnection:
    edges: list[PhotoEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class FaceEdge:
    cursor: str
    node: Face


@strawberry.type
class FaceConnection:
    edges: list[FaceEdge]
    page_info: PageInfo
    total_count: int


@strawberry.input
class PhotoFilter:
    source: Source | None = None
    import_id: strawberry.ID | None = None
    has_faces: bool | None = None
    no_faces: bool = strawberry.field(default=False, description="Only the 'no faces' category")
    status: PhotoStatus | None = None
    imported_from: str | None = strawberry.field(default=None, description="ISO 8601 date or time, inclusive")
    imported_to: str | None = strawberry.field(default=None, description="ISO 8601 date or time, exclusive")

    def to_query(self) -> queries.PhotoFilter:
        try:
            imported_from = queries.iso_bound(self.imported_from, "importedFrom")
            imported_to = queries.iso_bound(self.imported_to, "importedTo")
        except ValueError as error:
            raise GraphQLError(str(error), extensions={"code": "BAD_FILTER"}) from None
        return queries.PhotoFilter(
            source=self.source.value if self.source else None, import_id=self.import_id, has_faces=self.has_faces,
            no_faces=self.no_faces, status=self.status.value if self.status else None,
            imported_from=imported_from, imported_to=imported_to,
        )


@strawberry.input
class FaceFilter:
    photo_id: strawberry.ID | None = None
    source: Source | None = None
    import_id: strawberry.ID | None = None
    min_score: float | None = None

    def to_query(self) -> queries.FaceFilter:
        return queries.FaceFilter(photo_id=self.photo_id, source=self.source.value if self.source else None,
                                  import_id=self.import_id, min_score=self.min_score)


@strawberry.type(description="The signed-in user's photos and faces, and the system's pipeline")
class ProcessingStats:
    photos: int = strawberry.field(description="Stored photos (not rejected)")
    waiting: int = strawberry.field(description="Stored, not analysed yet")
    analysed: int
    no_faces: int
    rejected: int
    faces: int
    running_imports: int


def _page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise GraphQLError(f"first must be between 1 and {MAX_PAGE}")
    return first


async def _stats(ctx: SignedInContext) -> ProcessingStats:
    counts = await queries.photo_counts(ctx.system.engine, ctx.user.id)
    running = sum(1 for r in await queries.import_rows(ctx.system.engine, ctx.user.id) if r["status"] == "running")
    return ProcessingStats(
        photos=counts["imported"] + counts["analysed"] + counts["no_faces"], waiting=counts["imported"],
        analysed=counts["analysed"], no_faces=counts["no_faces"], rejected=counts["rejected"], faces=counts["faces"],
        running_imports=running,
    )


# People -----------------------------------------------------------------------------------


@strawberry.type(description="One person: faces grouped by clustering and the owner's corrections")
class Person:
    id: strawberry.ID
    name: str
    size: int
    representative_face_id: strawberry.ID
    edited: bool = strawberry.field(description="Corrected by hand: clustering runs keep its faces")
    hidden: bool = strawberry.field(default=False, description="Hidden from the people list")

    @strawberry.field(name="faceIds", description="Its faces, in id order")
    async def face_ids(self, info: Info) -> list[strawberry.ID]:
        return [strawberry.ID(f) for f in await _ctx(info).loaders.person_faces.load(str(self.id))]

    @strawberry.field(description="Its photos, newest first, each with its face")
    async def photos(self, info: Info, first: int = 100) -> list[PersonPhoto]:
        from projections.people import person_photos

        ctx = _ctx(info)
        rows = await person_photos(ctx.system.engine, ctx.user.id, str(self.id), _page_size(first))
        return [PersonPhoto(
            face_id=strawberry.ID(r["face_id"]), photo_id=strawberry.ID(r["photo_id"]), imported_at=r["imported_at"],
            width=r["width"], height=r["height"], box=Box(x1=r["x1"], y1=r["y1"], x2=r["x2"], y2=r["y2"]),
            image_url=f"/api/photos/{r['photo_id']}/thumbnail",
        ) for r in rows]

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Person:
        return cls(id=strawberry.ID(r["id"]), name=r["name"], size=r["size"], edited=r["edited"],
                   representative_face_id=strawberry.ID(r["representative_face_id"]), hidden=bool(r.get("hidden")))


@strawberry.type(description="A photo of a person, with the person's face in it")
class PersonPhoto:
    face_id: strawberry.ID
    photo_id: strawberry.ID
    imported_at: str | None
    width: int | None
    height: int | None
    box: Box
    image_url: str


@strawberry.type(description="Two people that are probably one")
class MergeSuggestion:
    person: Person
    other: Person
    similarity: float = strawberry.field(description="Calibrated similarity of their most alike faces, percent")


@strawberry.type(description="A person for a picker, with how alike it is")
class PersonCandidate:
    person: Person
    similarity: float = strawberry.field(description="Calibrated similarity, percent")


@strawberry.type(description="A face in no person and the person it most resembles")
class FaceReview:
    face_id: strawberry.ID
    photo_id: strawberry.ID
    crop_url: str
    person: Person
    similarity: float = strawberry.field(description="Calibrated similarity to the person's nearest faces, percent")


@strawberry.input
class FacePerson:
    face_id: strawberry.ID
    person_id: strawberry.ID


async def _people_rows(ctx: SignedInContext, model: str) -> dict[str, dict[str, Any]]:
    from projections.people import list_people

    return {r["id"]: r for r in await list_people(ctx.system.engine, ctx.user.id, model)}


async def _people_reading(ctx: SignedInContext, read: Any, *args: Any) -> Any:
    """Runs a read of the owner's people that needs the vectors; its errors become coded ones."""
    from commands.clustering import ClusteringError

    try:
        return await read(ctx.system, ctx.user.id, *args)
    except ClusteringError as error:
        raise GraphQLError(str(error), extensions={"code": "BAD_CLUSTERING"}) from None
    except VectorIndexUnavailable as error:
        raise GraphQLError(str(error), extensions={"code": error.code}) from None


@strawberry.type
class ClusteringRun:
    algorithm: str
    faces: int
    people: int
    unassigned: int
    seconds: float


def _model(ctx: SignedInContext, model: str | None) -> str:
    return model or ctx.system.settings.embedder


async def _people_change(info: Info, action: Any, *args: Any) -> Any:
    """Runs a correction on the signed-in user's people; user errors become GraphQL errors."""
    from domain.people import InvalidCorrection, PersonNotFound, SamePhotoConflict

    ctx = _ctx(info)
    try:
        return await asyncio.to_thread(action, ctx.system.app, ctx.user.id, *args)
    except PersonNotFound as error:
        raise GraphQLError(str(error), extensions={"code": "NOT_FOUND"}) from None
    except SamePhotoConflict as error:  # the client words it: the message names photo ids
        raise GraphQLError(str(error), extensions={"code": "SAME_PHOTO"}) from None
    except InvalidCorrection as error:
        raise GraphQLError(str(error), extensions={"code": "BAD_CORRECTION"}) from None


async def _search_by_example(info: Info, input: SearchInput) -> SearchResult:
    """The search by example of the query (and of the mutation kept for older clients)."""
    from facesearch.services.search import SearchFilters, SearchInputError, SearchUnavailable, search_by_example

    ctx = _ctx(info)
    data = ctx.examples.get(ctx.user.id, input.example_id)
    if data is None:
        raise GraphQLError("this example has expired or is not yours: upload it again",
                           extensions={"code": "NOT_FOUND", "reason": "EXAMPLE_EXPIRED", "params": {}})
    filters = SearchFilters(source=input.source.value if input.source else None, import_id=input.import_id)
    try:
        async with cpu_slots_for(ctx.system).held():  # decode, detect, embed: a few searches at a time
            result = await search_by_example(ctx.system, data, ctx.user.id, threshold=input.threshold,
                                             face_index=input.face_index, filters=filters,
                                             require_all_models=input.require_all_models)
    except SearchInputError as error:
        raise GraphQLError(str(error), extensions={"code": "BAD_EXAMPLE", "reason": error.code, "params": error.params}) from None
    except SearchUnavailable as error:
        raise GraphQLError(str(error), extensions={"code": "SEARCH_UNAVAILABLE"}) from None
    except VectorIndexUnavailable as error:
        raise GraphQLError(str(error), extensions={"code": error.code}) from None
    return SearchResult(
        model=result.model, metric=result.metric, threshold=result.threshold, candidates=result.candidates,
        archive_faces=result.archive_faces, models=result.models, require_all_models=result.require_all_models,
        query_face=_example_face(result.query_face), example_faces=[_example_face(f) for f in result.example_faces],
        photos=[
            PhotoMatch(photo_id=strawberry.ID(p.photo_id), similarity=p.similarity, faces=[
                FaceMatch(face_id=strawberry.ID(m.face_id), face_index=m.face_index, box=_box_of(m.box),
                          similarity=m.similarity, raw_score=m.raw_score, score=m.score,
                          verdicts=[ModelVerdict(model=v.model, metric=v.metric, raw=v.raw, similarity=v.similarity,
                                                 same=v.same, pair_similarity=v.pair_similarity) for v in m.verdicts],
                          cross_check_similarity=m.cross_check_similarity, cross_check=m.cross_check,
                          person_id=strawberry.ID(m.person_id) if m.person_id else None, person_name=m.person_name)
                for m in p.faces
            ])
            # Milvus filters by owner; the read model is asked again so nothing else slips through.
            for p in result.photos if await ctx.loaders.photos.load(p.photo_id)
        ],
        total_ms=result.timings_ms.get("total", 0.0),
    )


@strawberry.type
class Query:
    @strawberry.field
    def me(self, info: Info) -> User:
        user = _ctx(info).user
        return User(id=strawberry.ID(user.id), username=user.username, role=user.role)

    @strawberry.field(description="The photo sources, in the order the server lists them")
    def sources(self, info: Info) -> list[SourceInfo]:
        _ctx(info)
        return [SourceInfo(name=s.name, value=Source(s.name), label=s.label, kind=s.kind) for s in SOURCES.values()]

    @strawberry.field(name="photoFormats", description="The photo formats uploads, imports and search take")
    def photo_formats(self, info: Info) -> PhotoFormats:
        _ctx(info)
        return PhotoFormats(labels=[f.label for f in FORMATS], mime_types=list(MIME_TYPES_IN_ORDER),
                            suffixes=list(SUFFIXES_IN_ORDER))

    @strawberry.field(description="Searches your photos for the person in an uploaded example (POST /api/search/examples)")
    async def search_by_example(self, info: Info, input: SearchInput) -> SearchResult:
        return await _search_by_example(info, input)

    @strawberry.field(description="Your photos, newest first, with cursor pagination")
    async def photos(
        self, info: Info, filter: PhotoFilter | None = None, first: int = 50, after: str | None = None
    ) -> PhotoConnection:
        ctx = _ctx(info)
        try:
            rows, has_next, total = await queries.photo_page(
                ctx.system.engine, ctx.user.id, (filter or PhotoFilter()).to_query(), _page_size(first), after
            )
        except queries.BadCursor as error:
            raise GraphQLError(str(error)) from None
        for row in rows:  # the Face/Photo resolvers below find these without another query
            ctx.loaders.photos.prime(row["id"], row)
        edges = [PhotoEdge(cursor=queries.photo_cursor(r), node=Photo.from_row(r)) for r in rows]
        return PhotoConnection(
            edges=edges, total_count=total,
            page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field
    async def photo(self, info: Info, id: strawberry.ID) -> Photo | None:
        row = await _ctx(info).loaders.photos.load(str(id))
        return Photo.from_row(row) if row else None

    @strawberry.field(description="Your faces, with cursor pagination")
    async def faces(
        self, info: Info, filter: FaceFilter | None = None, first: int = 50, after: str | None = None
    ) -> FaceConnection:
        ctx = _ctx(info)
        try:
            rows, has_next, total = await queries.face_page(
                ctx.system.engine, ctx.user.id, (filter or FaceFilter()).to_query(), _page_size(first), after
            )
        except queries.BadCursor as error:
            raise GraphQLError(str(error)) from None
        edges = [FaceEdge(cursor=queries.encode_cursor(r["id"]), node=Face.from_row(r)) for r in rows]
        return FaceConnection(
            edges=edges, total_count=total,
            page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field
    async def face(self, info: Info, id: strawberry.ID) -> Face | None:
        ctx = _ctx(info)
        row = await queries.face(ctx.system.engine, ctx.user.id, str(id))
        return Face.from_row(row) if row else None

    @strawberry.field(description="Your import jobs, newest first")
    async def imports(self, info: Info, first: int = 50) -> list[ImportJob]:
        ctx = _ctx(info)
        return [ImportJob.from_row(r) for r in await queries.import_rows(ctx.system.engine, ctx.user.id, _page_size(first))]

    @strawberry.field(name="importJob")
    async def import_job(self, info: Info, id: strawberry.ID) -> ImportJob | None:
        row = await _ctx(info).loaders.imports.load(str(id))
        return ImportJob.from_row(row) if row else None

    @strawberry.field
    async def stats(self, info: Info) -> ProcessingStats:
        return await _stats(_ctx(info))

    @strawberry.field(description="Your people for one embedding model (default: the workers'), largest first")
    async def people(
        self, info: Info, model: str | None = None,
        search: str = "",
        include_hidden: bool = False,
    ) -> list[Person]:
        from projections.people import list_people

        ctx = _ctx(info)
        rows = await list_people(ctx.system.engine, ctx.user.id, _model(ctx, model), search[:200], include_hidden)
        return [Person.from_row(r) for r in rows]

    @strawberry.field(description="Pairs of your people that are probably one, most likely first")
    async def merge_suggestions(self, info: Info, first: int = 20, model: str | None = None) -> list[MergeSuggestion]:
        from facesearch.services.people import suggest_merges

        ctx = _ctx(info)
        model = _model(ctx, model)
        pairs = await _people_reading(ctx, suggest_merges, model, _page_size(first))
        rows = await _people_rows(ctx, model)
        return [
            MergeSuggestion(person=Person.from_row(rows[p.person_id]), other=Person.from_row(rows[p.other_id]),
                            similarity=percent)
            for p, percent in pairs if p.person_id in rows and p.other_id in rows
        ]

    @strawberry.field(description="Your people nearest a person's faces or one face, nearest first (for pickers)")
    async def near_people(
        self, info: Info, person_id: strawberry.ID | None = None, face_id: strawberry.ID | None = None,
        first: int = 20, model: str | None = None,
    ) -> list[PersonCandidate]:
        from facesearch.services.people import people_near
        from projections.people import faces_of_people

        ctx = _ctx(info)
        model = _model(ctx, model)
        if (person_id is None) == (face_id is None):
            raise GraphQLError("give personId or faceId", extensions={"code": "BAD_REQUEST"})
        if person_id is not None:
            face_ids = (await faces_of_people(ctx.system.engine, ctx.user.id, [str(person_id)]))[str(person_id)]
        elif await queries.face(ctx.system.engine, ctx.user.id, str(face_id)) is None:
            raise GraphQLError("no such face", extensions={"code": "NOT_FOUND"})
        else:
            face_ids = [str(face_id)]
        near = await _people_reading(ctx, people_near, model, face_ids, str(person_id) if person_id else None,
                                     _page_size(first))
        rows = await _people_rows(ctx, model)
        return [PersonCandidate(person=Person.from_row(rows[p]), similarity=s) for p, s in near if p in rows]

    @strawberry.field(description="Your faces in no person, each with its most alike person, most alike first")
    async def unassigned_faces(self, info: Info, first: int = 100, model: str | None = None) -> list[FaceReview]:
        from domain.people import photo_of
        from facesearch.services.people import review_candidates

        ctx = _ctx(info)
        model = _model(ctx, model)
        found = await _people_reading(ctx, review_candidates, model, _page_size(first))
        rows = await _people_rows(ctx, model)
        return [
            FaceReview(face_id=strawberry.ID(c.face_id), photo_id=strawberry.ID(photo_of(c.face_id)),
                       crop_url=f"/api/faces/{c.face_id}/crop", person=Person.from_row(rows[c.person_id]), similarity=s)
            for c, s in found if c.person_id in rows
        ]

    @strawberry.field(description="One of your people, or null")
    async def person(self, info: Info, id: strawberry.ID, model: str | None = None) -> Person | None:
        from projections.people import person_row

        ctx = _ctx(info)
        row = await person_row(ctx.system.engine, ctx.user.id, _model(ctx, model), str(id))
        return Person.from_row(row) if row else None


@strawberry.input
class StartImportInput:
    source: ImportSource
    target: str = strawberry.field(description="A VK or Yandex.Disk link, or a folder on the server")


@strawberry.type
class ModelVerdict:
    model: str
    metric: str = strawberry.field(description="cosine or l2")
    raw: float | None = strawberry.field(description="Cosine similarity or L2 distance; null: not embedded by this model yet")
    similarity: float | None = strawberry.field(description="Calibrated similarity, percent")
    same: bool | None = strawberry.field(description="Whether this model accepts the match at the search's threshold")
    pair_similarity: float | None = strawberry.field(description="Calibrated similarity of the two faces judged as a pair")


@strawberry.type
class FaceMatch:
    face_id: strawberry.ID
    face_index: int
    box: Box
    similarity: float = strawberry.field(description="Calibrated similarity to the example face, percent")
    raw_score: float = strawberry.field(description="Cosine similarity or L2 distance, as the model's metric says")
    score: float = strawberry.field(description="Cohort-normalised score: the calibrated similarity's input")
    verdicts: list[ModelVerdict] = strawberry.field(description="The searched model first, then each cross-checking model")
    cross_check_similarity: float | None = strawberry.field(
        description="Every configured model's evidence combined, calibrated, percent (null: one model only)")
    cross_check: bool | None = strawberry.field(
        description="The cross-check's verdict at the search's threshold: combined evidence enough, and no model finds a stranger")
    person_id: strawberry.ID | None = strawberry.field(description="The person this face belongs to, if any")
    person_name: str | None = None


@strawberry.type
class PhotoMatch:
    photo_id: strawberry.ID
    similarity: float = strawberry.field(description="Of its best face, percent")
    faces: list[FaceMatch]

    @strawberry.field
    async def photo(self, info: Info) -> Photo | None:
        row = await _ctx(info).loaders.photos.load(str(self.photo_id))
        return Photo.from_row(row) if row else None


@strawberry.type
class ExampleFace:
    face_index: int
    box: Box
    score: float


@strawberry.type
class SearchResult:
    model: str
    metric: str
    threshold: float
    candidates: int = strawberry.field(description="Neighbours the index returned before the threshold")
    archive_faces: int = strawberry.field(description="Faces the search covered: the percentages are for an archive this size")
    models: list[str] = strawberry.field(description="The searched model, then the models that cross-checked its matches")
    require_all_models: bool
    query_face: ExampleFace
    example_faces: list[ExampleFace]
    photos: list[PhotoMatch]
    total_ms: float


@strawberry.input
class SearchInput:
    example_id: str = strawberry.field(description="From POST /api/search/examples")
    face_index: int = strawberry.field(default=0, description="Which face of the example (largest first)")
    threshold: float = strawberry.field(default=85.0, description="Calibrated similarity, 70 to 95 percent")
    source: Source | None = None
    import_id: strawberry.ID | None = None
    require_all_models: bool = strawberry.field(default=False, description="Keep only the matches the cross-check of every configured model accepts")


def _box_of(b) -> Box:
    return Box(x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2)


def _example_face(f) -> ExampleFace:
    return ExampleFace(face_index=f.face_index, box=_box_of(f.box), score=f.score)


@strawberry.type
class DeletePhotoResult:
    id: strawberry.ID
    deleted: bool


def refused(error: ImportRefused) -> GraphQLError:
    """IMPORT_REFUSED, with the refusal's own code as `reason` and the values it quotes."""
    return GraphQLError(str(error), extensions={"code": "IMPORT_REFUSED", "reason": error.code, "params": error.params})


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Starts an import job; progress arrives through importProgress")
    async def start_import(self, info: Info, input: StartImportInput) -> strawberry.ID:
        ctx = _ctx(info)
        try:
            return strawberry.ID(await ctx.imports.start(ctx.user.id, input.source.value, input.target))
        except ImportRefused as error:
            raise refused(error) from None

    @strawberry.mutation(description="Stops a running import job at its next photo")
    async def cancel_import(self, info: Info, id: strawberry.ID) -> bool:
        ctx = _ctx(info)
        try:
            await ctx.imports.cancel(ctx.user.id, str(id))
        except ImportRefused as error:
            raise refused(error) from None
        return True

    @strawberry.mutation(description="Runs a failed or cancelled link or folder job again, as a new job; returns its id")
    async def retry_import(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        ctx = _ctx(info)
        try:
            return strawberry.ID(await ctx.imports.retry(ctx.user.id, str(id)))
        except ImportRefused as error:
            raise refused(error) from None

    @strawberry.mutation(description="Searches your photos for the person in an uploaded example",
                         deprecation_reason="a search only reads: use the query searchByExample (same input and answer)")
    async def search_by_example(self, info: Info, input: SearchInput) -> SearchResult:
        return await _search_by_example(info, input)

    @strawberry.mutation(description="Deletes one of your photos (and its faces) from search and the gallery")
    async def delete_photo(self, info: Info, id: strawberry.ID) -> DeletePhotoResult:
        ctx = _ctx(info)
        row = await queries.photo(ctx.system.engine, ctx.user.id, str(id))
        if row is None:
            raise GraphQLError("no such photo", extensions={"code": "NOT_FOUND"})
        try:
            await asyncio.to_thread(ctx.system.app.delete_photo, UUID(str(id)))
        except AggregateNotFoundError:
            raise GraphQLError("no such photo", extensions={"code": "NOT_FOUND"}) from None
        return DeletePhotoResult(id=id, deleted=True)

    @strawberry.mutation(description="Groups your faces into people again; corrections are kept")
    async def cluster_people(
        self, info: Info, algorithm: str | None = None, model: str | None = None, percent: float | None = None,
    ) -> ClusteringRun:
        from commands.clustering import ClusteringError
        from facesearch.services.people import run_clustering

        ctx = _ctx(info)
        try:
            run = await run_clustering(ctx.system, ctx.user.id, _model(ctx, model), algorithm, percent=percent)
        except ClusteringError as error:
            raise GraphQLError(str(error), extensions={"code": "BAD_CLUSTERING"}) from None
        except VectorIndexUnavailable as error:
            raise GraphQLError(str(error), extensions={"code": error.code}) from None
        return ClusteringRun(algorithm=run.algorithm, faces=run.faces, people=run.people, unassigned=run.unassigned,
                             seconds=run.seconds)

    @strawberry.mutation
    async def name_person(self, info: Info, id: strawberry.ID, name: str, model: str | None = None) -> bool:
        from commands.people import name_person

        await _people_change(info, name_person, _model(_ctx(info), model), str(id), name)
        return True

    @strawberry.mutation(description="The other person's faces join this one")
    async def merge_people(self, info: Info, id: strawberry.ID, other_id: strawberry.ID, model: str | None = None) -> bool:
        from commands.people import merge_people

        await _people_change(info, merge_people, _model(_ctx(info), model), str(id), str(other_id))
        return True

    @strawberry.mutation(description="Moves a face to a person (a new one without personId); returns the person's id")
    async def move_face(
        self, info: Info, face_id: strawberry.ID, person_id: strawberry.ID | None = None, model: str | None = None,
    ) -> strawberry.ID:
        from commands.people import move_face

        ctx = _ctx(info)
        # The People aggregate knows face ids, not owners: only a face of one's own may enter it.
        if await queries.face(ctx.system.engine, ctx.user.id, str(face_id)) is None:
            raise GraphQLError("no such face", extensions={"code": "NOT_FOUND"})
        moved = await _people_change(info, move_face, _model(_ctx(info), model), str(face_id),
                                     str(person_id) if person_id else None)
        return strawberry.ID(moved)

    @strawberry.mutation(description="Not this person: the face leaves and never joins it again")
    async def reject_face(self, info: Info, face_id: strawberry.ID, person_id: strawberry.ID, model: str | None = None) -> bool:
        from commands.people import reject_face

        await _people_change(info, reject_face, _model(_ctx(info), model), str(face_id), str(person_id))
        return True

    @strawberry.mutation(description="Not the same person: this pair is never suggested for a merge again")
    async def decline_merge(self, info: Info, id: strawberry.ID, other_id: strawberry.ID, model: str | None = None) -> bool:
        from commands.people import decline_merge

        await _people_change(info, decline_merge, _model(_ctx(info), model), str(id), str(other_id))
        return True

    @strawberry.mutation(description="Hides a person from the list (hidden: false shows it again)")
    async def hide_person(self, info: Info, id: strawberry.ID, hidden: bool = True, model: str | None = None) -> bool:
        from commands.people import hide_person

        await _people_change(info, hide_person, _model(_ctx(info), model), str(id), hidden)
        return True

    @strawberry.mutation(description="The face that stands for the person on its card")
    async def choose_cover(self, info: Info, id: strawberry.ID, face_id: strawberry.ID, model: str | None = None) -> bool:
        from commands.people import choose_cover

        await _people_change(info, choose_cover, _model(_ctx(info), model), str(id), str(face_id))
        return True

    @strawberry.mutation(description="Faces in no person: accepted ones join their person, declined ones never will")
    async def review_faces(
        self, info: Info, accept: list[FacePerson] | None = None, decline: list[FacePerson] | None = None,
        model: str | None = None,
    ) -> int:
        from commands.people import review_faces

        ctx = _ctx(info)
        accepted = {str(a.face_id): str(a.person_id) for a in accept or []}
        declined = {str(d.face_id): str(d.person_id) for d in decline or []}
        if len(accepted) + len(declined) > MAX_PAGE:
            raise GraphQLError(f"at most {MAX_PAGE} faces at a time", extensions={"code": "BAD_REQUEST"})
        for face_id in {**accepted, **declined}:  # only faces of one's own may enter one's people
            if await queries.face(ctx.system.engine, ctx.user.id, face_id) is None:
                raise GraphQLError("no such face", extensions={"code": "NOT_FOUND"})
        await _people_change(info, review_faces, _model(ctx, model), accepted, declined)
        return len(accepted)

    @strawberry.mutation(description="These faces leave the person as a new person; returns its id")
    async def split_person(
        self, info: Info, id: strawberry.ID, face_ids: list[strawberry.ID], model: str | None = None,
    ) -> strawberry.ID:
        from commands.people import split_person

        new = await _people_change(info, split_person, _model(_ctx(info), model), str(id), [str(f) for f in face_ids])
        return strawberry.ID(new)


POLL_SECONDS = 0.5
APPEAR_SECONDS = 10.0


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The job each time its counters change, until it ends")
    async def import_progress(self, info: Info, id: strawberry.ID) -> AsyncGenerator[ImportJob, None]:
        ctx = _ctx(info)
        last = None
        # A job just started reaches the read model a moment after startImport answers.
        deadline = asyncio.get_running_loop().time() + APPEAR_SECONDS
        while True:
            rows = await queries.imports_by_ids(ctx.system.engine, ctx.user.id, [str(id)])
            row = rows.get(str(id))
            if row is None:
                if last is None and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(POLL_SECONDS)
                    continue
                raise GraphQLError("no such import", extensions={"code": "NOT_FOUND"})
            if row != last:
                last = row
                # The connection's loaders live as long as it does: load the problems afresh.
                with contextlib.suppress(KeyError):  # not loaded yet
                    ctx.loaders.problems.clear(str(id))
                yield ImportJob.from_row(row)
            if row["status"] != "running":
                return
            await asyncio.sleep(POLL_SECONDS)

    @strawberry.subscription(description="Your processing statistics each time they change")
    async def processing_progress(self, info: Info) -> AsyncGenerator[ProcessingStats, None]:
        ctx = _ctx(info)
        last = None
        while True:
            stats = await _stats(ctx)
            if stats != last:
                last = stats
                yield stats
            await asyncio.sleep(POLL_SECONDS * 2)


schema = Schema(query=Query, mutation=Mutation, subscription=Subscription, extensions=limit_extensions())


async def context_for(connection: HTTPConnection) -> Context:
    """Builds the per-request context (FastAPI dependency for the GraphQL router)."""
    state = connection.app.state
    user = connection.scope.get("state", {}).get("user")
    system = state.system
    return Context(
        user=user, system=system, imports=state.imports, examples=state.examples,
        loaders=make_loaders(system.engine, user.id) if user else None,
    )
