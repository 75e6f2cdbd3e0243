"""The Photo aggregate: one image of one owner, whatever sources it came from.

Its id derives from the owner and the content hash, so the same bytes imported twice
(from one source or two) are one photo with several provenance records.
"""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate


def photo_id_for(owner: str, content_hash: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"facesearch:photo:{owner}:{content_hash}")


class PhotoStatus:
    imported = "imported"  # stored, waiting for face analysis
    analysed = "analysed"  # faces detected (and embedded)
    no_faces = "no_faces"
    rejected = "rejected"


class PhotoImported(Aggregate.Created):
    """New bytes arrived and were stored in the blob store under `content_hash`.

    v2 added `mime_type`; v1 events are upcast with the type unknown.
    """

    class_version = 2

    owner: str
    source: str
    source_ref: str
    import_id: str | None
    content_hash: str
    size: int
    width: int
    height: int
    mime_type: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["mime_type"] = "application/octet-stream"


class PhotoRejected(Aggregate.Created):
    """Bytes that are not a usable image; nothing of them is kept but the hash.

    `code` says why in a stable word (NOT_AN_IMAGE, TOO_MANY_PIXELS, …); v2 added it,
    v1 events are upcast with it empty (not recorded)."""

    class_version = 2

    owner: str
    source: str
    source_ref: str
    import_id: str | None
    content_hash: str
    size: int
    reason: str
    code: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["code"] = ""

    def apply(self, photo: Photo) -> None:
        photo.status = PhotoStatus.rejected
        photo.reject_code = self.code


class PhotoSourceAdded(Aggregate.Event):
    """The same bytes were found again in another place (or another import)."""

    source: str
    source_ref: str
    import_id: str | None

    def apply(self, photo: Photo) -> None:
        photo.sources.append((self.source, self.source_ref))


class FacesDetected(Aggregate.Event):
    """`faces` holds one dict per face: box, landmarks, score, quality (see domain.faces)."""

    detector: str
    detector_version: str
    faces: list[dict[str, Any]]
    timing_ms: dict[str, float]

    def apply(self, photo: Photo) -> None:
        photo.status = PhotoStatus.analysed
        photo.face_count = len(self.faces)
        photo.detector = self.detector
        photo.faces = list(self.faces)  # kept so a model added later can embed the same faces


class NoFacesFound(Aggregate.Event):
    detector: str
    detector_version: str
    timing_ms: dict[str, float]

    def apply(self, photo: Photo) -> None:
        photo.status = PhotoStatus.no_faces
        photo.face_count = 0
        photo.detector = self.detector


class FaceEmbedded(Aggregate.Event):
    """One face's vector, as base64 of little-endian float32, so replay can rebuild Milvus."""

    face_index: int
    model: str
    model_version: str
    dimension: int
    vector_b64: str
    timing_ms: float

    def apply(self, photo: Photo) -> None:
        photo.embedded.add((self.model, self.face_index))


class PhotoAnalysisFailed(Aggregate.Event):
    """The workers could not analyse this photo (a model error, not bad input)."""

    reason: str

    def apply(self, photo: Photo) -> None:
        photo.failures += 1


class PhotoDeleted(Aggregate.Event):
    def apply(self, photo: Photo) -> None:
        photo.deleted = True


class Photo(Aggregate):
    def __init__(self, owner: str, source: str, source_ref: str, content_hash: str) -> None:
        self.owner = owner
        self.content_hash = content_hash
        self.sources: list[tuple[str, str]] = [(source, source_ref)]
        self.status = PhotoStatus.imported
        self.face_count = 0
        self.detector: str | None = None
        self.faces: list[dict[str, Any]] = []  # as FacesDetected recorded them (box, landmarks, ...)
        self.embedded: set[tuple[str, int]] = set()
        self.failures = 0
        self.deleted = False
        self.reject_code = ""  # PhotoRejected's

    # Creation -------------------------------------------------------------------------

    @classmethod
    def imported(
        cls,
        *,
        owner: str,
        source: str,
        source_ref: str,
        import_id: str | None,
        content_hash: str,
        size: int,
        width: int,
        height: int,
        mime_type: str,
    ) -> Photo:
        return cls._create(
            PhotoImported,
            id=photo_id_for(owner, content_hash),
            owner=owner,
            source=source,
            source_ref=source_ref,
            import_id=import_id,
            content_hash=content_hash,
            size=size,
            width=width,
            height=height,
            mime_type=mime_type,
        )

    @classmethod
    def rejected(
        cls,
        *,
        owner: str,
        source: str,
        source_ref: str,
        import_id: str | None,
        content_hash: str,
        size: int,
        reason: str,
        code: str,
    ) -> Photo:
        return cls._create(
            PhotoRejected,
            id=photo_id_for(owner, content_hash),
            owner=owner,
            source=source,
            source_ref=source_ref,
            import_id=import_id,
            content_hash=content_hash,
            size=size,
            reason=reason,
            code=code,
        )

    # Commands ----------------------------------------------------------------------------

    def add_source(self, source: str, source_ref: str, import_id: str | None) -> bool:
        """Records another provenance; False when this one is already known."""
        if (source, source_ref) in self.sources:
            return False
        self.trigger_event(PhotoSourceAdded, source=source, source_ref=source_ref, import_id=import_id)
        return True

    @property
    def needs_analysis(self) -> bool:
        return self.status == PhotoStatus.imported and not self.deleted

    def record_faces(
        self, detector: str, detector_version: str, faces: list[dict[str, Any]], timing_ms: dict[str, float]
    ) -> None:
        if not self.needs_analysis:
            raise PhotoAlreadyAnalysed(self.id)
        if faces:
            self.trigger_event(
                FacesDetected, detector=detector, detector_version=detector_version, faces=faces, timing_ms=timing_ms
            )
        else:
            self.trigger_event(NoFacesFound, detector=detector, detector_version=detector_version, timing_ms=timing_ms)

    def faces_missing(self, model: str) -> list[int]:
        """Indices of the detected faces that `model` has not embedded yet (none once deleted)."""
        if self.deleted:
            return []
        return [index for index in range(self.face_count) if (model, index) not in self.embedded]

    def record_embedding(
        self, face_index: int, model: str, model_version: str, dimension: int, vector_b64: str, timing_ms: float
    ) -> None:
        if (model, face_index) in self.embedded:
            return
        if not 0 <= face_index < self.face_count:
            raise ValueError(f"photo {self.id} has no face {face_index}")
        self.trigger_event(
            FaceEmbedded,
            face_index=face_index,
            model=model,
            model_version=model_version,
            dimension=dimension,
            vector_b64=vector_b64,
            timing_ms=timing_ms,
        )

    def record_failure(self, reason: str) -> None:
        self.trigger_event(PhotoAnalysisFailed, reason=reason)

    def delete(self) -> None:
        if not self.deleted:
            self.trigger_event(PhotoDeleted)


class PhotoAlreadyAnalysed(Exception):
    def __init__(self, photo_id: UUID) -> None:
        super().__init__(f"photo {photo_id} was already analysed")
