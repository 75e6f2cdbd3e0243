"""The hostile corpus through the import path: a folder import from the web client, the CLI's
folder import with real workers, and VK and Yandex.Disk imports from their fakes.

Every hostile file ends settled with a reason and a stable code in the job's events (and, where
its bytes reached the core, as `PhotoRejected` with the same code); the job completes with the
right counts; the good photos beside them are stored (and, with workers, analysed); what was
stored before is untouched; /health keeps answering fast and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import sqlalchemy as sa

from commands.blobs import content_hash
from domain.names import distinct_printable
from domain.photo import photo_id_for
from facesearch.services.imports import import_local
from facesearch.system import System
from projections.tables import photos
from tests.api.conftest import auth, images_dir
from tests.conftest import make_image
from tests.pipeline.conftest import lfw_identities, wait_until_analysed
from tests.reliability.hostile import CORPUS, FOLDER_SAFE_NAMES, content_bomb, write_sixty_mb
from tests.reliability.imports import (
    FOLDER_PHOTO_SUFFIXES,
    HEALTH_WITHIN_S,
    MiB,
    assert_printable_names,
    health_until,
    reset_peak,
    second_worst,
    settlements,
    vm,
)

START_LOCAL = "mutation($t: String!) { startImport(input: {source: LOCAL, target: $t}) }"


def hostile_folder(folder: Path, good: dict[str, bytes]) -> dict[str, Path]:
    """The corpus, a content bomb, a 60 MB file, good photos under hostile names and the `good`
    ones, written into `folder`; returns case -> path."""
    folder.mkdir(parents=True)
    paths = {}
    for case, (name, data, _) in CORPUS.items():
        paths[case] = folder / name
        paths[case].write_bytes(data)
    paths["content-bomb"] = folder / "flat.png"
    paths["content-bomb"].write_bytes(content_bomb())
    paths["sixty-mb"] = folder / "huge.jpg"
    write_sixty_mb(paths["sixty-mb"])
    for i, (case, name) in enumerate(sorted(FOLDER_SAFE_NAMES.items())):
        paths[f"name-{case}"] = folder / name
        paths[f"name-{case}"].write_bytes(make_image(900 + i))
    # Names that differ only where `printable` replaces: still two photos, not one lost.
    paths["twin-newline"] = folder / "twin\n.jpg"
    paths["twin-newline"].write_bytes(make_image(950))
    paths["twin-rlo"] = folder / "twin\u202e.jpg"
    paths["twin-rlo"].write_bytes(make_image(951))
    for name, data in good.items():
        paths[f"good-{name}"] = folder / name
        paths[f"good-{name}"].write_bytes(data)
    return paths


def local_ref(path: Path) -> str:
    return f"local:{distinct_printable(str(path.resolve()))}"


def assert_folder_outcomes(app, owner: str, paths: dict[str, Path], settled: dict, max_bytes: int) -> None:
    """Each file settled as it should be, a rejection recorded with the code of its failure."""
    by_case = {case: settled[local_ref(path)] for case, path in paths.items()}
    for case, (name, _, codes) in CORPUS.items():
        got = by_case[case]
        if not name.endswith(FOLDER_PHOTO_SUFFIXES):
            # Not named like a photo we take: counted, with a code.
            assert got.kind == "skipped" and got.reason and got.code == "not_a_photo", (case, got)
            continue
        assert got.kind == "failed" and got.code in codes and got.reason, (case, got)
        assert rejection_code(app, owner, CORPUS[case][1]) == got.code, case
    assert by_case["content-bomb"].kind == "stored", by_case["content-bomb"]
    big = by_case["sixty-mb"]
    assert big.kind == "skipped" and big.code == "photo_too_large" and f"{max_bytes} byte limit" in big.reason, big
    for case, got in by_case.items():
        if case.startswith(("name-", "twin-", "good-")):
            assert got.kind == "stored", (case, got)
    assert_printable_names(settled)


def test_folder_import_from_the_web_client_settles_every_hostile_file(api, users):
    # A photo stored before, whose bytes come again in the folder: still there, one photo.
    before = make_image(970)
    r = api.upload(users.ann, ("before.jpg", before, "image/jpeg"))
    assert r.status_code == 201, r.text
    before_id = r.json()["results"][0]["photo_id"]
    folder = images_dir(api) / f"hostile-{uuid.uuid4().hex[:8]}"
    paths = hostile_folder(folder, {"again.jpg": before, "a.jpg": make_image(971), "b.png": make_image(972, fmt="PNG")})
    app = api.system.app

    reset_peak()
    rss_before = vm("VmRSS")
    import_id = api.data(users.ann, START_LOCAL, t=str(folder))["startImport"]

    def done() -> bool:
        return not app.get_import(uuid.UUID(import_id)).is_open and import_id not in api.client.app.state.imports.running

    latencies = health_until(lambda: api.client.get("/health").status_code, done)
    peak = (vm("VmHWM") - rss_before) / MiB

    job = app.get_import(uuid.UUID(import_id))
    events = list(app.events.get(job.id))
    assert job.status == "completed", [type(e).__name__ for e in events][-3:]
    settled = settlements(events)
    assert_folder_outcomes(app, users.ann_id, paths, settled, api.settings.max_upload_bytes)
    skipped = sum(1 for s in settled.values() if s.kind == "skipped")
    failed = sum(1 for s in settled.values() if s.kind == "failed")
    assert job.counts() == {"discovered": len(paths), "stored": len(paths) - skipped - failed, "skipped": skipped,
                            "failed": failed}

    # The photo stored before is still one photo, now with a second source.
    assert settled[local_ref(paths["good-again.jpg"])].kind == "stored"
    api.caught_up()
    node = api.data(users.ann, "query($id: ID!) { photo(id: $id) { status sources { source } } }", id=before_id)["photo"]
    assert node["status"] == "IMPORTED" and [s["source"] for s in node["sources"]] == ["UPLOAD", "LOCAL"]
    problems = api.data(users.ann, "query($id: ID!) { importJob(id: $id) { failed skipped problems { reason } } }",
                        id=import_id)["importJob"]
    assert (problems["failed"], problems["skipped"]) == (failed, skipped)

    assert second_worst(latencies) < HEALTH_WITHIN_S, f"worst /health {latencies[-1] * 1000:.0f} ms"
    # One decode of the content bomb (7,745² RGB) is 172 MiB: the import decodes one file at a time.
    assert peak < 300, f"peak grew {peak:.0f} MiB"
    r = api.client.get(f"/api/photos/{before_id}/original", headers=auth(users.ann))
    assert r.status_code == 200 and r.content == before


def rejection_code(app, owner: str, data: bytes) -> str:
    """The code PhotoRejected recorded for these bytes of `owner`'s."""
    first = next(iter(app.events.get(photo_id_for(owner, content_hash(data)))))
    assert type(first).__name__ == "PhotoRejected", type(first).__name__
    return first.code


async def test_cli_folder_import_with_workers_analyses_the_good_photos(pipeline_settings, data_dir, tmp_path):
    faces = [paths[0] for paths in lfw_identities(data_dir, 2, 1).values()]
    no_face = sorted((data_dir / "no_faces" / "clean").iterdir())[0]
    good = {"face1.jpg": faces[0].read_bytes(), "face2.jpg": faces[1].read_bytes(), "noface.jpg": no_face.read_bytes()}
    paths = hostile_folder(tmp_path / "album", good)
    shutil.copy(faces[0], tmp_path / "album" / "face1\u202egpj.jpg")  # the same bytes under a hostile name
    paths["good-face1-again"] = tmp_path / "album" / "face1\u202egpj.jpg"
    stored = sum(1 for case in paths if case.startswith(("name-", "twin-", "good-"))) + 1  # + the content bomb
    distinct_photos = stored - 1  # face1 twice

    system = System(pipeline_settings)
    await system.start(workers=True)
    try:
        result = await asyncio.to_thread(import_local, system.app, pipeline_settings, str(tmp_path / "album"),
                                         owner="ann", operator=True)
        assert result.status == "completed"
        assert result.counts["stored"] == stored and result.counts["discovered"] == len(paths)
        events = list(system.app.events.get(result.import_id))
        settled = settlements(events)
        assert_folder_outcomes(system.app, "ann", paths, settled, pipeline_settings.max_upload_bytes)

        await wait_until_analysed(system, distinct_photos, timeout=150)
        async with system.engine.connect() as conn:
            rows = {r.source_ref: r for r in await conn.execute(sa.select(photos))}
        analysed = {ref: r.status for ref, r in rows.items() if r.status != "rejected"}
        assert len(analysed) == distinct_photos and set(analysed.values()) <= {"analysed", "no_faces"}
        assert rows[local_ref(paths["good-face1.jpg"])].face_count >= 1
        assert rows[local_ref(paths["content-bomb"])].status == "no_faces"
        failures = [n for n in system.app.recorder.select_notifications(start=None, limit=1_000_000)
                    if n.topic.endswith(":PhotoAnalysisFailed")]
        assert failures == []
    finally:
        await system.stop()
