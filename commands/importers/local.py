"""Local folder source: every image under a folder, recursively, in a stable order.

Only folders under the configured allowed roots can be imported; every path is
resolved (symlinks followed) and must stay under a root, so a symlink cannot lead
outside. Images are recognised by their first bytes, not by extension.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from commands.images import FORMATS_IN_WORDS, PHOTO_SUFFIXES, sniff_image
from commands.importers.base import (
    AccessDenied,
    BadLink,
    Discovered,
    PhotoTooLarge,
    RemotePhoto,
    SkippedItem,
    SourceSpec,
    SourceStats,
    UnsupportedImage,
    verify_checksums,
)
from domain.names import distinct_printable, file_name, printable

_SNIFF_BYTES = 32
# A file named like a photo (PHOTO_SUFFIXES) is handed to the core even when its bytes are not
# one, so that it ends as PhotoRejected with the decoder's reason; other files are skipped and counted.


class LocalFolderSource:
    """Images under `folder`, which must resolve inside one of `allowed_roots`."""

    source = "local"

    def __init__(
        self,
        folder: str | os.PathLike[str],
        allowed_roots: Iterable[str | os.PathLike[str]],
        *,
        max_bytes: int = 50 * 1024 * 1024,
    ) -> None:
        self._roots = [Path(r).resolve() for r in allowed_roots]
        if not self._roots:
            raise AccessDenied("local imports are turned off: no allowed folders are configured")
        text = os.fspath(folder)
        if not text or "\x00" in text:
            raise BadLink("the folder path is empty or malformed")
        requested = Path(text)
        if not requested.is_absolute():
            raise BadLink("give the folder as an absolute path")
        resolved = requested.resolve()
        if not self._allowed(resolved):
            raise AccessDenied(f"{requested} is outside the folders allowed for import")
        if not resolved.is_dir():
            raise BadLink(f"{requested} is not a folder")
        self.folder = resolved
        self._max_bytes = max_bytes
        self.stats = SourceStats()

    def __repr__(self) -> str:
        return f"LocalFolderSource(folder={str(self.folder)!r})"

    def __enter__(self) -> LocalFolderSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def _allowed(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self._roots)

    def discover(self) -> Iterator[Discovered]:
        """Files sorted by path; links leading outside the allowed roots are skipped."""
        seen_dirs: set[Path] = set()
        yield from self._walk(self.folder, seen_dirs)

    def _walk(self, folder: Path, seen_dirs: set[Path]) -> Iterator[Discovered]:
        seen_dirs.add(folder)
        try:
            entries = sorted(folder.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            yield SkippedItem(self.source, _ref(folder), file_name(folder.name), f"cannot read folder ({exc.strerror})",
                              code="unreadable")
            return
        subfolders: list[Path] = []
        for entry in entries:
            resolved = entry.resolve()
            if not self._allowed(resolved):
                yield SkippedItem(self.source, _ref(entry), file_name(entry.name),
                                  "a link leading outside the allowed folders", code="outside_allowed_folders")
                continue
            try:
                info = resolved.stat()
            except OSError:
                yield SkippedItem(self.source, _ref(entry), file_name(entry.name), "broken link or unreadable file",
                                  code="unreadable")
                continue
            if stat.S_ISDIR(info.st_mode):
                if resolved not in seen_dirs:  # a link back up the tree would loop forever
                    subfolders.append(resolved)
                continue
            if not stat.S_ISREG(info.st_mode):
                yield SkippedItem(self.source, _ref(resolved), file_name(entry.name), "not a regular file",
                                  code="not_a_regular_file")
                continue
            yield self._classify(entry, resolved, info.st_size)
        for sub in subfolders:
            if sub not in seen_dirs:
                yield from self._walk(sub, seen_dirs)

    def _classify(self, entry: Path, resolved: Path, size: int) -> Discovered:
        ref, name = _ref(resolved), file_name(entry.name)
        provenance = {"path": printable(str(resolved)), "relative_path": printable(str(entry.relative_to(self.folder)))}
        if size > self._max_bytes:
            return SkippedItem(self.source, ref, name, f"larger than the {self._max_bytes} byte limit", provenance,
                               PhotoTooLarge.code)
        try:
            with resolved.open("rb") as handle:
                head = handle.read(_SNIFF_BYTES)
        except OSError as exc:
            return SkippedItem(self.source, ref, name, f"unreadable ({exc.strerror})", provenance, "unreadable")
        kind = sniff_image(head)
        if kind is None and entry.suffix.lower() in PHOTO_SUFFIXES:
            return RemotePhoto(self.source, ref, name, provenance | {"format": "unknown"}, size=size,
                               locator=str(resolved))
        if kind is None:
            return SkippedItem(self.source, ref, name, f"not a {FORMATS_IN_WORDS} image", provenance)
        return RemotePhoto(self.source, ref, name, provenance | {"format": kind}, size=size, locator=str(resolved))

    def fetch(self, photo: RemotePhoto) -> bytes:
        """The file's bytes, re-checked against the allowed roots (thread-safe)."""
        path = Path(photo.locator).resolve()
        if not self._allowed(path):
            raise AccessDenied(f"{photo.name} is outside the folders allowed for import", source_ref=photo.source_ref)
        with path.open("rb") as handle:
            data = handle.read(self._max_bytes + 1)
        if len(data) > self._max_bytes:
            raise PhotoTooLarge(f"{photo.name}: larger than the {self._max_bytes} byte limit", source_ref=photo.source_ref,
                                params={"limit_megabytes": round(self._max_bytes / 2**20)})
        verify_checksums(photo, data)
        if sniff_image(data) is None and Path(photo.locator).suffix.lower() not in PHOTO_SUFFIXES:
            raise UnsupportedImage(f"{photo.name}: not a {FORMATS_IN_WORDS} image", source_ref=photo.source_ref)
        self.stats.add(photos_fetched=1, bytes_fetched=len(data))
        return data


def _ref(path: Path) -> str:
    """The stored reference of a file: its path as a person can read it (NUL, control and
    text-direction characters replaced, kept distinct); the real path travels only as the locator."""
    return f"local:{distinct_printable(str(path))}"


SPEC = SourceSpec(
    name="local", label="a local folder", graphql_name="LOCAL", kind="folder",
    summary="Import every photo under a local folder.", target_help="Folder to import, recursively",
)
