"""The CLI acts as an account of the web client (issue 12): `import local` with one account
stores the photos in that account's gallery (the API's GraphQL `photos` query shows them);
with no account, or several and none named, it stops with exit code 2 and a message;
`--owner NAME` chooses, spelt any way the account name normalises to.

The API on real parts (tansu, relay, projections) and the CLI in this process, on one var_dir."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from facesearch.cli import main as cli
from facesearch.settings import Settings, get_settings
from tests.api.conftest import auth, wait_until, write_test_calibration
from tests.fakes.images import make_image

PHOTOS = "query { photos(first: 100) { totalCount edges { node { sourceRef } } } }"


@pytest.fixture(scope="module")
def stack(tansu, tmp_path_factory) -> Iterator[tuple[TestClient, Path]]:
    root = tmp_path_factory.mktemp("cli-owner")
    write_test_calibration(root / "models")
    settings = Settings(var_dir=root / "var", models_dir=root / "models", kafka_bootstrap=tansu.bootstrap,
                        run_workers=False, redelivery_after_seconds=2.0)
    mp = pytest.MonkeyPatch()
    mp.setenv("FACESEARCH_VAR_DIR", str(settings.var_dir))
    mp.setenv("FACESEARCH_MODELS_DIR", str(settings.models_dir))
    get_settings.cache_clear()
    try:
        with TestClient(create_app(settings), raise_server_exceptions=True) as client:
            yield client, root
    finally:
        mp.undo()
        get_settings.cache_clear()


def album(root: Path, name: str, first: int, count: int) -> Path:
    folder = root / name
    folder.mkdir()
    for i in range(first, first + count):
        (folder / f"{name}-{i}.jpg").write_bytes(make_image(i))
    return folder


def invoke(*args: str):
    result = CliRunner().invoke(cli.app, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def gallery(client: TestClient, token: str) -> set[str]:
    r = client.post("/graphql", json={"query": PHOTOS}, headers=auth(token))
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    page = r.json()["data"]["photos"]
    assert page["totalCount"] == len(page["edges"])
    return {Path(e["node"]["sourceRef"]).name for e in page["edges"]}


def test_cli_imports_land_in_the_gallery_of_the_account_it_acts_as(stack):
    client, root = stack
    assert (root / "var" / "import").is_dir()  # the default drop folder for imports from the web client
    ann_album = album(root, "ann", 0, 5)
    bob_album = album(root, "bob", 100, 3)

    # No account yet: nothing is imported, and the message says what to do.
    none = invoke("import", "local", str(ann_album))
    assert none.exit_code == 2, none.output
    assert "create the first account in the web client first" in none.output and "--owner" in none.output
    assert invoke("people", "list").exit_code == 2
    assert invoke("import", "local", str(ann_album), "--owner", "ann").exit_code == 2  # no such account either
    assert json.loads(invoke("status", "--json").output)["imports"] == []

    r = client.post("/api/auth/setup", json={"username": "Ann", "password": "ann-password"})
    assert r.status_code == 201, r.text
    ann = r.json()
    client.cookies.clear()

    # The only account is the default.
    imported = invoke("import", "local", str(ann_album))
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.output.splitlines()[-1])["stored"] == 5
    wait_until(lambda: len(gallery(client, ann["token"])) == 5, timeout=60)
    assert gallery(client, ann["token"]) == {f"ann-{i}.jpg" for i in range(5)}

    r = client.post("/api/users", json={"username": "bob", "password": "bob-password"}, headers=auth(ann["token"]))
    assert r.status_code == 201, r.text
    bob = client.post("/api/auth/login", json={"username": "bob", "password": "bob-password"}).json()
    client.cookies.clear()

    # Two accounts and no name: the CLI will not guess.
    ambiguous = invoke("import", "local", str(bob_album))
    assert ambiguous.exit_code == 2, ambiguous.output
    assert "--owner" in ambiguous.output and "2 accounts" in ambiguous.output
    unknown = invoke("import", "local", str(bob_album), "--owner", "carol")
    assert unknown.exit_code == 2 and "carol" in unknown.output, unknown.output

    # --owner chooses, in any spelling that normalises to the account's name.
    chosen = invoke("import", "local", str(bob_album), "--owner", " BOB ")
    assert chosen.exit_code == 0, chosen.output
    wait_until(lambda: len(gallery(client, bob["token"])) == 3, timeout=60)
    assert gallery(client, bob["token"]) == {f"bob-{i}.jpg" for i in range(100, 103)}
    assert gallery(client, ann["token"]) == {f"ann-{i}.jpg" for i in range(5)}

    # The other --owner commands resolve through the same helper.
    listed = invoke("import", "list", "--owner", "ann", "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["owner"], r["stored"]) for r in rows] == [(ann["user"]["id"], 5)]
    assert len(invoke("import", "list", "--json").output.splitlines()) == 2
    people = invoke("people", "list", "--owner", "bob", "--json")
    assert people.exit_code == 0 and people.output == "", people.output
    assert invoke("people", "list").exit_code == 2
    assert invoke("cluster", "--owner", "nobody").exit_code == 2
