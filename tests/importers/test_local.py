from __future__ import annotations

import os
from pathlib import Path

import pytest

from commands.importers.base import AccessDenied, BadLink, RemotePhoto, SkippedItem
from commands.importers.local import LocalFolderSource
from tests.fakes.images import make_image


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "archive"
    outside = tmp_path / "private"
    (root / "2019" / "summer").mkdir(parents=True)
    outside.mkdir()
    (root / "b.jpg").write_bytes(make_image(1))
    (root / "a.png").write_bytes(make_image(2, "PNG"))
    (root / "2019" / "photo.dat").write_bytes(make_image(3, "WEBP"))  # WebP behind a wrong extension
    (root / "2019" / "fake.jpg").write_bytes(b"this is text, not a jpeg")
    (root / "2019" / "summer" / "c.jpeg").write_bytes(make_image(4))
    (root / "notes.txt").write_text("hi")
    (root / "iphone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    (outside / "secret.jpg").write_bytes(make_image(5))
    os.symlink(outside / "secret.jpg", root / "link-to-secret.jpg")
    os.symlink(outside, root / "link-to-private")
    os.symlink(root / "2019", root / "link-to-2019")  # inside: followed once, not twice
    return {"root": root, "outside": outside, "tmp": tmp_path}


def test_yields_images_by_magic_bytes_in_stable_order(tree):
    source = LocalFolderSource(tree["root"], [tree["root"]], heic_supported=False)
    first = list(source.discover())
    assert first == list(source.discover())
    photos = [f for f in first if isinstance(f, RemotePhoto)]
    skipped = {f.name: f.reason for f in first if isinstance(f, SkippedItem)}
    # fake.jpg is named like a photo: it goes to the core, which rejects it with a reason.
    assert [p.provenance["relative_path"] for p in photos] == [
        "a.png", "b.jpg", "2019/fake.jpg", "2019/photo.dat", "2019/summer/c.jpeg",
    ]
    assert all(p.source_ref == "local:" + str(Path(p.locator)) and Path(p.locator).is_absolute() for p in photos)
    assert photos[3].provenance["format"] == "webp"
    assert photos[2].provenance["format"] == "unknown"
    assert skipped["notes.txt"].startswith("not a JPEG")
    assert "pillow-heif" in skipped["iphone.heic"]
    assert "outside the allowed folders" in skipped["link-to-secret.jpg"]
    assert "outside the allowed folders" in skipped["link-to-private"]
    assert source.fetch(photos[1]) == make_image(1)
    assert all("secret" not in p.source_ref for p in photos)


def test_heic_is_taken_when_supported(tree):
    source = LocalFolderSource(tree["root"], [tree["root"]], heic_supported=True)
    names = [f.name for f in source.discover() if isinstance(f, RemotePhoto)]
    assert "iphone.heic" in names


def test_refuses_folders_outside_the_roots(tree):
    with pytest.raises(AccessDenied, match="outside the folders allowed"):
        LocalFolderSource(tree["outside"], [tree["root"]])
    with pytest.raises(AccessDenied):
        LocalFolderSource(tree["root"] / ".." / "private", [tree["root"]])
    with pytest.raises(AccessDenied, match="outside"):
        LocalFolderSource(tree["root"] / "link-to-private", [tree["root"]])  # a symlink leading outside
    with pytest.raises(AccessDenied, match="turned off"):
        LocalFolderSource(tree["root"], [])
    with pytest.raises(BadLink, match="absolute"):
        LocalFolderSource("archive", [tree["root"]])
    with pytest.raises(BadLink, match="not a folder"):
        LocalFolderSource(tree["root"] / "b.jpg", [tree["root"]])


def test_fetch_rechecks_the_roots(tree):
    source = LocalFolderSource(tree["root"], [tree["root"]])
    forged = RemotePhoto("local", "local:x", "secret.jpg", {}, locator=str(tree["outside"] / "secret.jpg"))
    with pytest.raises(AccessDenied):
        source.fetch(forged)
