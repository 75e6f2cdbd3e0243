"""Photos sent from the browser (`POST /api/photos`, api/photos.py): a source with no
importer here, declared so that listings, filters and the GraphQL enum know it."""

from __future__ import annotations

from commands.importers.base import SourceSpec

SPEC = SourceSpec(name="upload", label="an upload", graphql_name="UPLOAD", kind="upload")
