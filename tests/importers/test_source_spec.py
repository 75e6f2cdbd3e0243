"""A new source is its module plus one entry (issue #14): a fake source, registered before
the CLI, the settings, the API and the GraphQL schema are built, shows up in each of them.

They are built at import, and this test session has imported them long ago without the
fake, so the check runs in a fresh interpreter (`main`) that registers the fake first and
prints what it saw as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from commands.importers import SOURCES
from commands.importers.base import BadLink, LinkSyntax, OAuthProvider, Opening, RemotePhoto, SourceSpec

ROOT = Path(__file__).resolve().parents[2]
LINK = "https://photos.example/album/7"


class FakeSettings(BaseModel):
    fake_api_base: str = "https://api.photos.example"
    fake_page_size: int = 5


class FakeSource:
    """One photo per album; records how it was opened."""

    source = "fake"
    opened: list[tuple[str, Opening]] = []

    def __init__(self, album: str, opening: Opening) -> None:
        self.album = album
        FakeSource.opened.append((album, opening))

    def discover(self) -> Iterator[RemotePhoto]:
        yield RemotePhoto(source="fake", source_ref=f"fake:{self.album}:1", name="one.jpg", provenance={})

    def fetch(self, photo: RemotePhoto) -> bytes:
        from tests.fakes.images import make_image

        return make_image(7)

    def close(self) -> None:
        pass


def _parse(host: str, segments: list[str], query: str) -> str:
    if len(segments) != 2 or segments[0] != "album":
        raise BadLink("not a fake album")
    return segments[1]


FAKE = SourceSpec(
    name="fake", label="Fake Photos", graphql_name="FAKE_PHOTOS", kind="link",
    summary="Import a fake album.", target_help="A fake album: photos.example/album/N",
    link=LinkSyntax(hosts=frozenset({"photos.example"}), parse=_parse),
    open=FakeSource, needs_token=lambda album: False, provider=OAuthProvider("fakeid", "Fake ID"),
    settings=FakeSettings, api_base_setting="fake_api_base",
    options=lambda s: {},
)


def main(var_dir: str) -> None:
    """Registers the fake, then builds everything and prints what each part saw."""
    import asyncio
    from types import SimpleNamespace
    from uuid import UUID

    from commands.importers import parse_link, register

    register(FAKE)

    from typer.testing import CliRunner

    from api.gql.schema import schema
    from api.imports import ImportJobs, ImportRefused
    from commands.credentials import _label
    from facesearch.cli.main import app
    from facesearch.settings import Settings
    from facesearch.system import make_app

    def enum_values(name: str) -> list[str]:  # as a client sees them: by introspection
        answer = schema.execute_sync(f'{{ __type(name: "{name}") {{ enumValues {{ name }} }} }}')
        assert answer.errors is None and answer.data is not None, answer.errors
        return sorted(v["name"] for v in answer.data["__type"]["enumValues"])

    runner = CliRunner()
    seen: dict[str, object] = {
        "cli_commands": runner.invoke(app, ["import", "--help"], terminal_width=200).output,
        "cli_fake_help": runner.invoke(app, ["import", "fake", "--help"], terminal_width=200).output,
        "graphql_source": enum_values("Source"),
        "graphql_import_source": enum_values("ImportSource"),
        "graphql_sources": schema.execute_sync(  # what the web client reads at sign-in
            "{ sources { name value label kind } }", context_value=SimpleNamespace(user=SimpleNamespace(id="u"))).data,
        "parsed": parse_link(LINK),
        "provider_label": _label("fakeid"),
    }
    os.environ["FACESEARCH_FAKE_API_BASE"] = "https://other.photos.example"
    settings = Settings(var_dir=Path(var_dir), fake_page_size=9)
    seen["settings"] = [settings.fake_api_base, settings.fake_page_size]

    async def start() -> dict[str, object]:
        jobs = ImportJobs(SimpleNamespace(settings=settings, app=make_app(settings)))
        import_id = await jobs.start("owner-1", "fake", LINK)
        await asyncio.gather(*jobs.running.values())
        job = jobs.system.app.get_import(UUID(import_id))
        try:
            await jobs.start("owner-1", "nope", LINK)
            refused = ""
        except ImportRefused as error:
            refused = str(error)
        return {"source": job.source, "status": job.status, "counts": job.counts(), "bad_source": refused}

    seen["api"] = asyncio.run(start())
    album, opening = FakeSource.opened[-1]
    seen["opened"] = [album, opening.api_base, opening.token]
    print(json.dumps(seen))


def test_a_fake_source_shows_up_in_the_cli_the_api_and_graphql(tmp_path):
    assert "fake" not in SOURCES  # registered in the child only
    code = f"import tests.importers.test_source_spec as t; t.main({str(tmp_path / 'var')!r})"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    commands = seen["cli_commands"]
    for name in ("vk", "yadisk", "local", "fake"):
        assert f" {name} " in commands, commands
    assert "Import a fake album." in commands
    assert "A fake album: photos.example/album/N" in seen["cli_fake_help"]
    assert "--token-env" in seen["cli_fake_help"]

    # The values the client sends keep their names; the fake's is its spec's.
    assert seen["graphql_source"] == ["FAKE_PHOTOS", "LOCAL", "UPLOAD", "VK", "YANDEX_DISK"]
    assert seen["graphql_import_source"] == ["FAKE_PHOTOS", "LOCAL", "VK", "YANDEX_DISK"]
    # The web client lists and labels sources from this query (frontend/src/lib/catalog.js).
    assert seen["graphql_sources"]["sources"][-1] == {
        "name": "fake", "value": "FAKE_PHOTOS", "label": "Fake Photos", "kind": "link"}
    assert [s["name"] for s in seen["graphql_sources"]["sources"]] == ["vk", "yadisk", "local", "upload", "fake"]

    assert seen["parsed"] == "7"
    assert seen["provider_label"] == "Fake ID"
    assert seen["settings"] == ["https://other.photos.example", 9]  # from FACESEARCH_FAKE_API_BASE

    # Started through the API's import jobs: validated, recorded, opened with its settings, run.
    assert seen["api"]["source"] == "fake"
    assert seen["api"]["status"] == "completed", seen["api"]
    assert seen["api"]["counts"]["stored"] == 1, seen["api"]
    assert "source must be one of vk, yadisk, local, fake" in seen["api"]["bad_source"]
    assert seen["opened"] == ["7", "https://other.photos.example", None]


def test_the_declared_sources_and_their_enum_names():
    from api.gql.schema import ImportSource, Source

    assert list(SOURCES) == ["vk", "yadisk", "local", "upload"]
    assert {m.name: m.value for m in Source} == {"VK": "vk", "YANDEX_DISK": "yadisk", "LOCAL": "local",
                                                 "UPLOAD": "upload"}
    assert {m.name: m.value for m in ImportSource} == {"VK": "vk", "YANDEX_DISK": "yadisk", "LOCAL": "local"}
    assert [s.provider.name for s in SOURCES.values() if s.provider] == ["vk", "yandex"]
