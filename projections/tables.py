"""Read-model tables. Disposable: every row here can be rebuilt from the event store."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# How far each consumer got on each topic partition, written with its effects.
checkpoints = sa.Table(
    "projection_checkpoints",
    metadata,
    sa.Column("projection", sa.String(64), primary_key=True),
    sa.Column("topic", sa.String(200), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_id", sa.BigInteger, nullable=False),
    sa.Column("applied", sa.BigInteger, nullable=False, default=0),
    sa.Column("updated_at", sa.Float, nullable=False),  # epoch seconds, a liveness heartbeat
)

photos = sa.Table(
    "photos",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False, index=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("source", sa.String(16), nullable=False, index=True),
    sa.Column("source_ref", sa.Text, nullable=False),
    sa.Column("import_id", sa.String(36), index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("reject_reason", sa.Text),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("mime_type", sa.String(64)),
    sa.Column("face_count", sa.Integer, nullable=False, default=0),
    sa.Column("detector", sa.String(64)),
    sa.Column("imported_at", sa.String(40), nullable=False, index=True),
    sa.Column("analysed_at", sa.String(40)),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
)

photo_sources = sa.Table(
    "photo_sources",
    metadata,
    sa.Column("photo_id", sa.String(36), primary_key=True),
    sa.Column("source", sa.String(16), primary_key=True),
    sa.Column("source_ref", sa.Text, primary_key=True),
    sa.Column("import_id", sa.String(36)),
    sa.Column("added_at", sa.String(40), nullable=False),
)

imports = sa.Table(
    "imports",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("discovered", sa.Integer, nullable=False, default=0),
    sa.Column("stored", sa.Integer, nullable=False, default=0),
    sa.Column("duplicates", sa.Integer, nullable=False, default=0),
    sa.Column("skipped", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("reason", sa.Text),
    # Why it failed for clients to word (a SourceError code) and the values it quotes.
    sa.Column("reason_code", sa.String(40)),
    sa.Column("reason_params", sa.JSON),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

import_problems = sa.Table(
    "import_problems",
    metadata,
    sa.Column("import_id", sa.String(36), primary_key=True),
    sa.Column("source_ref", sa.Text, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # "skipped" or "failed"
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("code", sa.String(40)),  # TOO_MANY_PIXELS, EMPTY_FILE, checksum_mismatch, …
    sa.Column("params", sa.JSON),
)

# One row per detected face (the faces read model), with its photo's provenance copied in
# so a face list needs no join; the photo row is learned from PhotoImported on the same
# partition, before its faces.
faces = sa.Table(
    "faces",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),  # "<photo id>:<face index>"
    sa.Column("photo_id", sa.String(36), nullable=False, index=True),
    sa.Column("face_index", sa.Integer, nullable=False),
    sa.Column("owner", sa.String(128), nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("source_ref", sa.Text, nullable=False),
    sa.Column("import_id", sa.String(36)),
    sa.Column("x1", sa.Float, nullable=False),
    sa.Column("y1", sa.Float, nullable=False),
    sa.Column("x2", sa.Float, nullable=False),
    sa.Column("y2", sa.Float, nullable=False),
    sa.Column("landmarks", sa.JSON, nullable=False),  # five [x, y] points
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("size_px", sa.Float, nullable=False),
    sa.Column("blur", sa.Float, nullable=False),
    sa.Column("flags", sa.String(64), nullable=False, default=""),  # comma-separated quality flags
    sa.Column("detector", sa.String(64), nullable=False),
    sa.Column("detector_version", sa.String(64), nullable=False),
    sa.Column("models", sa.String(200), nullable=False, default=""),  # embedders that embedded it, comma-separated
    sa.Column("processed_at", sa.String(40), nullable=False, index=True),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
)

# What the faces projection knows of each photo before its faces arrive.
face_photos = sa.Table(
    "face_photos",
    metadata,
    sa.Column("photo_id", sa.String(36), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("source_ref", sa.Text, nullable=False),
    sa.Column("import_id", sa.String(36)),
    sa.Column("imported_at", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # imported | analysed | no_faces
    sa.Column("processed_at", sa.String(40)),
)

# The same for the Milvus projection (each projection rebuilds from its own tables alone).
vector_photos = sa.Table(
    "vector_photos",
    metadata,
    sa.Column("photo_id", sa.String(36), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("import_id", sa.String(36)),
    sa.Column("imported_at", sa.String(40), nullable=False),
)

# People (projections/people.py): one stream of people per owner and embedding model.
people_models = sa.Table(
    "people_models",
    metadata,
    sa.Column("people_id", sa.String(36), primary_key=True),  # the People aggregate
    sa.Column("owner", sa.String(128), nullable=False, index=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("runs", sa.Integer, nullable=False, default=0),
    sa.Column("algorithm", sa.String(32)),  # of the last full run
    sa.Column("parameters", sa.JSON),
    sa.Column("unassigned", sa.Integer, nullable=False, default=0),  # faces of no person after it
    sa.Column("clustered_at", sa.String(40)),
)

people = sa.Table(
    "people",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("people_id", sa.String(36), nullable=False, index=True),
    sa.Column("owner", sa.String(128), nullable=False, index=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("representative_face_id", sa.String(48), nullable=False),
    sa.Column("edited", sa.Boolean, nullable=False, default=False),  # corrected by hand: runs keep its faces
    sa.Column("updated_at", sa.String(40), nullable=False),
)

# People the owner hid from the list (a table of its own: create_all adds it to older databases).
hidden_people = sa.Table(
    "hidden_people",
    metadata,
    sa.Column("person_id", sa.String(16), primary_key=True),
    sa.Column("people_id", sa.String(36), nullable=False, index=True),
)

person_faces = sa.Table(
    "person_faces",
    metadata,
    sa.Column("people_id", sa.String(36), primary_key=True),
    sa.Column("face_id", sa.String(48), primary_key=True),  # "<photo id>:<face index>"
    sa.Column("person_id", sa.String(16), nullable=False, index=True),
)
