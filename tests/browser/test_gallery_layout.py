"""The gallery and the photo view at desktop sizes (issue 12), against a real `facesearch up`
(the same server as test_browser.py), driven by gallery_layout.mjs in Chromium.

Two folders go into one account: the first through the CLI (the CLI's default owner is the
account the web client made), the second through the web client (its path on the Imports page,
in the drop folder var/import that the server allows by default). Each has small generated
photos, LFW portraits at different sizes and a WIDER group photo. At 1366×900 and 1920×1080
every photo of both imports must load (the gallery stopped at its first page of 40: the "load
more" marker stayed in its trigger zone, so the observer never fired again), and in the photo
view every photo with faces must draw as many boxes as the server stores, each where its stored
box lies once scaled to the image as drawn (the overlay was stretched below it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from facesearch.settings import PROJECT_ROOT, Settings
from tests.browser.test_browser import CHROMIUM, lfw, running_server, server_env
from tests.fakes.images import make_image

DATA = Settings().data_dir
GROUPS = {"cli": "20--Family_Group/20_Family_Group_Family_Group_20_100.jpg",  # 1024×649, five faces
          "web": "13--Interview/13_Interview_Interview_On_Location_13_334.jpg"}  # 1024×1138, three faces
VIEWPORTS = ["1366x900", "1920x1080"]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def var(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gallery") / "var"


@pytest.fixture(scope="module")
def server(var, tmp_path_factory):
    yield from running_server(var, tmp_path_factory.getbasetemp() / "gallery-server.log")


def resized(source: Path, target: Path, size: tuple[int, int], canvas: tuple[int, int] | None = None) -> None:
    """`source` scaled to `size`, alone or pasted off-centre on a grey `canvas`."""
    with Image.open(source) as image:
        photo = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    if canvas:
        background = Image.new("RGB", canvas, (128, 128, 128))
        background.paste(photo, (canvas[0] // 5, canvas[1] // 6))
        photo = background
    photo.save(target, quality=90)


def write_folder(path: Path, seeds: range, portrait: Path, scaled: Path, size: tuple[int, int],
                 canvas: tuple[int, int] | None, group: str) -> set[str]:
    """Generated photos (no faces), an LFW portrait as it is, another one scaled to `size` (on
    `canvas`) and a WIDER group photo; returns the names of the photos with faces."""
    path.mkdir(parents=True)
    for seed in seeds:
        (path / f"generated-{seed}.jpg").write_bytes(make_image(seed, size=(64, 48)))
    shutil.copy(portrait, path / portrait.name)
    resized(scaled, path / f"scaled-{scaled.name}", size, canvas)
    shutil.copy(DATA / "wider" / "images" / group, path / Path(group).name)
    return {portrait.name, f"scaled-{scaled.name}", Path(group).name}


def test_both_imports_load_with_boxes_on_the_faces_at_desktop_sizes(server, var, tmp_path):
    # The CLI's folder: a 250×250 portrait, one scaled up to 600×600, a 1024×649 group photo.
    album = tmp_path / "album"
    cli_faces = write_folder(album, range(1000, 1060), lfw("Colin_Powell")[0], lfw("Tony_Blair")[0], (600, 600), None,
                             GROUPS["cli"])
    # The web client's, in the drop folder: a portrait, one on a wide 1500×900 canvas (drawn
    # scaled down at both sizes) and a tall 1024×1138 group photo.
    web = var / "import" / "web-album"
    web_faces = write_folder(web, range(2000, 2008), lfw("George_W_Bush")[0], lfw("Serena_Williams")[0], (500, 500),
                             (1500, 900), GROUPS["web"])
    cli_names, web_names = ({p.name for p in d.iterdir()} for d in (album, web))
    expected = len(cli_names) + len(web_names)

    user, password = "gallery-owner", "gallery-password"
    with httpx.Client(base_url=server, timeout=120) as api:
        r = api.post("/api/auth/setup", json={"username": user, "password": password})
        assert r.status_code == 201, r.text
        headers = {"Authorization": f"Bearer {r.json()['token']}"}

        # The CLI beside the running server, on its var_dir: the only account is the owner.
        imported = subprocess.run([sys.executable, "-m", "facesearch", "import", "local", str(album)], cwd=PROJECT_ROOT,
                                  env=server_env(var), capture_output=True, text=True, timeout=300)
        assert imported.returncode == 0, imported.stderr[-3000:]
        assert json.loads(imported.stdout.splitlines()[-1])["stored"] == len(cli_names)

        env = {**os.environ, "BASE_URL": server, "FS_USER": user, "FS_PASSWORD": password, "ARTIFACTS": str(ARTIFACTS),
               "WEB_FOLDER": str(web.resolve()), "EXPECTED": str(expected), "VIEWPORTS": ",".join(VIEWPORTS),
               "CHROMIUM": str(CHROMIUM)}
        run = subprocess.run(["node", str(Path(__file__).with_name("gallery_layout.mjs"))], env=env, capture_output=True,
                             text=True, timeout=900)
        lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
        report = json.loads(lines[-1]) if lines else {"ok": False, "error": run.stderr[-3000:]}
        print(json.dumps(report, indent=2))
        assert run.returncode == 0 and report["ok"], report

        # What the server holds: one CLI import and one from the client, each of its folder's photos.
        def graphql(query: str, **variables: str) -> dict:
            return api.post("/graphql", json={"query": query, "variables": variables}, headers=headers).json()["data"]

        jobs = {job["id"]: job for job in graphql("{ imports(first: 10) { id source target status stored } }")["imports"]}
        web_job = jobs.pop(report["webImport"]["id"])
        [cli_job] = jobs.values()
        assert (web_job["source"], web_job["target"], web_job["status"], web_job["stored"]) == (
            "LOCAL", str(web.resolve()), "COMPLETED", len(web_names))
        assert (cli_job["source"], cli_job["status"]) == ("LOCAL", "COMPLETED")
        photos_of = "query($id: ID!) { photos(filter: {importId: $id}, first: 200) { edges { node { sourceRef faceCount } } } }"
        refs: dict[str, set[str]] = {}
        for job, names, faces in ((cli_job, cli_names, cli_faces), (web_job, web_names, web_faces)):
            nodes = [e["node"] for e in graphql(photos_of, id=job["id"])["photos"]["edges"]]
            assert {name_of(n["sourceRef"]) for n in nodes} == names
            counts = {name_of(n["sourceRef"]): n["faceCount"] for n in nodes}
            assert {name for name, n in counts.items() if n > 0} == faces, counts
            assert all(counts[Path(group).name] >= 2 for group in GROUPS.values() if Path(group).name in names), counts
            refs[job["id"]] = {n["sourceRef"] for n in nodes}
        all_refs = set().union(*refs.values())
        with_faces = {n for n in all_refs if name_of(n) in cli_faces | web_faces}

    for size in VIEWPORTS:
        found = report[size]
        assert found["tiles"] == expected and set(found["refs"]) == all_refs, found["tiles"]
        assert {p["ref"] for p in found["photos"]} == with_faces, found["photos"]
        for photo in found["photos"]:
            assert photo["drawn"] == photo["stored"] == photo["tileFaces"] >= 1, photo
            assert photo["worstBoxError"] <= 2 and photo["overlayError"] <= 1.0, photo


def name_of(source_ref: str) -> str:
    return Path(source_ref.removeprefix("local:")).name
