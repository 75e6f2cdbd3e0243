"""The people pages in Chromium against a real server (`facesearch up`, real models), driven
by people_pages.mjs: a person page reached from a card and from a face in the photo view,
pickers with face thumbnails nearest first, a merge suggestion accepted and one declined
(and not shown again after re-clustering), and the bulk review of faces in no person
(accepted ones kept by a re-run). LFW photos: Colin Powell in 8, Tony Blair in 6, George W
Bush in 2 (too few for a person: his faces are left for the review), two people in one."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from facesearch.settings import PROJECT_ROOT
from tests.browser.test_browser import CHROMIUM, lfw, running_server

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"
SEEDED = {"Colin_Powell": 8, "Tony_Blair": 6, "George_W_Bush": 2, "Donald_Rumsfeld": 1, "Serena_Williams": 1}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from running_server(tmp_path_factory.mktemp("people-pages") / "var",
                              tmp_path_factory.getbasetemp() / "people-pages-server.log")


def test_people_pages(server):
    user, password = "people-owner", "people-password"
    paths = [path for person, n in SEEDED.items() for path in lfw(person)[:n]]
    with httpx.Client(base_url=server, timeout=120) as api:
        r = api.post("/api/auth/setup", json={"username": user, "password": password})
        assert r.status_code == 201, r.text
        headers = {"Authorization": f"Bearer {r.json()['token']}"}
        for path in paths:
            r = api.post("/api/photos", files={"files": (path.name, path.read_bytes(), "image/jpeg")}, headers=headers)
            assert r.status_code == 201, r.text
        deadline = time.monotonic() + 400
        query = {"query": "{ stats { photos waiting } }"}
        while True:
            stats = api.post("/graphql", json=query, headers=headers).json()["data"]["stats"]
            if stats["waiting"] == 0 and stats["photos"] >= len(paths):
                break
            assert time.monotonic() < deadline, f"photos were not analysed in time: {stats}"
            time.sleep(1)

    env = {**os.environ, "BASE_URL": server, "FS_USER": user, "FS_PASSWORD": password, "ARTIFACTS": str(ARTIFACTS),
           "PERSON_A": "Colin_Powell", "PERSON_B": "Tony_Blair", "CHROMIUM": str(CHROMIUM)}
    run = subprocess.run(["node", str(Path(__file__).with_name("people_pages.mjs"))], env=env, capture_output=True,
                         text=True, timeout=600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"ok": False, "error": run.stderr[-3000:]}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    assert run.returncode == 0 and report["ok"], report
    found = report["findings"]
    assert found["photosOnPage"] == found["personSize"] and found["boxesOnPage"] == found["personSize"]
    assert found["reachedFromFace"] is True
    assert found["pickerThumbs"] >= 1 and found["pickerNearestIsHalf"] is True
    assert found["declinedAfterRerun"] is False and found["mergedAway"] is True
    assert found["reviewAccepted"] >= 1 and found["acceptedKeptAfterRerun"] is True
