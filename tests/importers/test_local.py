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
    source = LocalFolderSource(tree["root"], [tree["root"]])
    first = list(source.discover())
    assert first == list(source.discover())
    photos = [f for f in first if isinstance(f, RemotePhoto)]
    skipped = {f.name: f.reason for f in first if isinstance(f, SkippedItem)}
    # fake.jpg is named like a photo: it goes to the core, which rejects it with a reason.
    assert [p.provenance["relative_path"] for p in photos] == [
        "a.png", "b.jpg", "iphone.heic", "2019/fake.jpg", "2019/photo.dat", "2019/summer/c.jpeg",
    ]
    assert all(p.source_ref == "local:" + str(Path(p.locator)) and Path(p.locator).is_absolute() for p in photos)
    assert photos[4].provenance["format"] == "webp"
    assert photos[3].provenance["format"] == "unknown"
    assert photos[2].provenance["format"] == "heif"  # HEIC is taken: pillow-heif is a dependency
    assert skipped["notes.txt"] == "not a JPG, PNG, WebP or HEIC image"
    assert "outside the allowed folders" in skipped["link-to-secret.jpg"]
    assert "outside the allowed folders" in skipped["link-to-private"]
    assert source.fetch(photos[1]) == make_image(1)
    assert all("secret" not in p.source_ref for p in photos)


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


def test_web_client_folder_import_works_out_of_the_box(tmp_path, monkeypatch):
    """Unset, the allowed roots are ~/Pictures (where it exists) and var_dir/import, which a
    started system creates; the path rules stay (nothing outside them, [] turns it off)."""
    from facesearch.services.imports import local_source
    from facesearch.settings import Settings

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("FACESEARCH_ALLOWED_IMPORT_ROOTS", raising=False)
    settings = Settings(var_dir=tmp_path / "var")
    assert settings.resolved_import_roots() == [tmp_path / "var" / "import"]
    (home / "Pictures" / "2024").mkdir(parents=True)
    (home / "Pictures" / "2024" / "a.jpg").write_bytes(make_image(1))
    assert settings.resolved_import_roots() == [home / "Pictures", tmp_path / "var" / "import"]

    source = local_source(settings, str(home / "Pictures" / "2024"), operator=False)
    assert [f.name for f in source.discover()] == ["a.jpg"]
    settings.import_drop_dir.mkdir(parents=True)
    assert list(local_source(settings, str(settings.import_drop_dir), operator=False).discover()) == []
    (home / "Documents").mkdir()
    with pytest.raises(AccessDenied, match="outside the folders allowed"):
        local_source(settings, str(home / "Documents"), operator=False)

    monkeypatch.setenv("FACESEARCH_ALLOWED_IMPORT_ROOTS", "[]")
    with pytest.raises(AccessDenied, match="turned off"):
        local_source(Settings(var_dir=tmp_path / "var"), str(home / "Pictures"), operator=False)
    monkeypatch.setenv("FACESEARCH_ALLOWED_IMPORT_ROOTS", f'["{home / "Documents"}"]')
    assert Settings().resolved_import_roots() == [home / "Documents"]


def test_the_operators_cli_imports_any_folder_unless_roots_are_configured(tmp_path, monkeypatch):
    from facesearch.services.imports import local_source
    from facesearch.settings import Settings

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FACESEARCH_ALLOWED_IMPORT_ROOTS", raising=False)
    album = tmp_path / "album"
    album.mkdir()
    (album / "a.jpg").write_bytes(make_image(1))
    assert [f.name for f in local_source(Settings(var_dir=tmp_path / "var"), str(album), operator=True).discover()] == ["a.jpg"]
    with pytest.raises(AccessDenied, match="outside"):
        local_source(Settings(var_dir=tmp_path / "var", allowed_import_roots=[tmp_path / "var"]), str(album), operator=True)
