"""One import job run by two processes at once, as happens when several API processes
resume the open jobs at start: both end with the job completed, each photo stored once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from commands.envelopes import iter_envelopes
from facesearch.services.imports import resume_import
from facesearch.settings import Settings
from facesearch.system import make_app
from tests.conftest import write_images

PHOTOS = 40
ROUNDS = 3  # the two runners meet at random moments: a few jobs, so that they meet for sure


def test_two_runners_of_one_job_both_finish_and_store_each_photo_once(pg_database, tmp_path: Path):
    settings = Settings(event_store_dsn=pg_database, read_model_url=pg_database, var_dir=tmp_path / "var",
                        import_concurrency=1)
    first = make_app(settings)
    # Each runner has its own app (its own connections and aggregate cache), like a process.
    second = make_app(settings)
    try:
        for round_ in range(ROUNDS):
            album = tmp_path / f"album{round_}"
            write_images(album, PHOTOS, start=round_ * PHOTOS)
            import_id = first.request_import(owner="ann", source="local", target=str(album), options={"operator": True})
            with ThreadPoolExecutor(2) as pool:
                runs = [pool.submit(resume_import, app, settings, import_id) for app in (first, second)]
                results = [run.result(timeout=120) for run in runs]  # neither raises (a conflict is not a crash)
            assert [r.status for r in results] == ["completed", "completed"]
            assert results[0].counts == results[1].counts == {"discovered": PHOTOS, "stored": PHOTOS, "skipped": 0, "failed": 0}

        events = list(iter_envelopes(first))
        types = Counter(e.event_type for e in events)
        assert (types["PhotoImported"], types["PhotoDiscovered"], types["PhotoStored"], types["ImportCompleted"]) == (
            ROUNDS * PHOTOS, ROUNDS * PHOTOS, ROUNDS * PHOTOS, ROUNDS)
        assert types["PhotoSourceAdded"] == 0
        assert len({e.payload["source_ref"] for e in events if e.event_type == "PhotoStored"}) == ROUNDS * PHOTOS
    finally:
        first.close()
        second.close()
