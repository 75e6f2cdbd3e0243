"""Hostile images through upload and search by example: each gets a clean coded refusal,
from its header where it lies, while `/health` keeps answering fast and memory stays bounded.

Failed before commands/images.read_header and api/cpu.py: the forged JPEG (a 640 × 480 file
claiming 7,500 × 7,900) was decoded on the event loop by POST /api/search/examples,
holding /health for seconds and adding hundreds of MB.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from domain.names import MAX_FILE_NAME_CHARS, has_unprintable
from tests.api.conftest import MAX_UPLOAD, auth
from tests.conftest import make_image
from tests.reliability.hostile import CORPUS, HOSTILE_NAMES, content_bomb, flat_pngs, forged_jpeg
from tests.reliability.imports import HEALTH_WITHIN_S, MiB, reset_peak, second_worst, vm


def example(api, token: str, name: str, data: bytes):
    return api.client.post("/api/search/examples", files={"file": (name, data, "image/jpeg")}, headers=auth(token))


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_upload_refuses_with_a_code(api, users, case):
    name, data, codes = CORPUS[case]
    r = api.upload(users.bob, (name, data, "image/jpeg"))
    assert r.status_code in (413, 415, 422), r.text
    [result] = r.json()["results"]
    assert result["status"] in ("rejected", "refused") and result["code"] in codes, result


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_search_example_refuses_with_a_code(api, users, case):
    name, data, codes = CORPUS[case]
    r = example(api, users.bob, name, data)
    assert r.status_code in (415, 422), r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "Traceback" not in detail
    if case in ("forged-jpeg", "png-bomb-under-limit", "png-bomb-over-limit"):
        assert any(f"[{code}]" in detail for code in codes), detail


def health_while(api, jobs: list) -> list[float]:
    """/health latencies, sorted, polled until every job is done (at most 2,000 polls)."""
    latencies = []
    while not all(j.done() for j in jobs) and len(latencies) < 2000:
        start = time.perf_counter()
        assert api.client.get("/health").status_code == 200
        latencies.append(time.perf_counter() - start)
        time.sleep(0.02)
    return sorted(latencies)


def test_health_answers_fast_while_forged_examples_arrive(api, users):
    data = forged_jpeg()
    reset_peak()
    rss_before = vm("VmRSS")

    def attacker(_: int) -> list[int]:
        return [example(api, users.bob, "forged.jpg", data).status_code for _ in range(5)]

    with ThreadPoolExecutor(4) as pool:
        attacks = [pool.submit(attacker, i) for i in range(4)]
        latencies = health_while(api, attacks)
        codes = [c for a in attacks for c in a.result(timeout=60)]
    assert set(codes) == {422}, codes
    assert second_worst(latencies) < HEALTH_WITHIN_S, (
        f"/health p50 {statistics.median(latencies) * 1000:.0f} ms, worst {latencies[-1] * 1000:.0f} ms")
    assert vm("VmHWM") - rss_before < 100 * MiB, f"peak grew {(vm('VmHWM') - rss_before) / MiB:.0f} MiB"


def test_large_honest_images_queue_for_cpu_with_health_fast_and_memory_bounded(api, users, monkeypatch):
    # 4,000 × 4,000 decodes to 46 MiB each; eight uploads at once decode eight at once if unbounded.
    import api.photos as photos

    uploaders, per_upload = 8, 4
    pngs = flat_pngs(4000, 4000, uploaders * per_upload, salt=str(time.time()))
    assert max(map(len, pngs)) < 300_000  # under this suite's upload limit
    settle, lock, running, most = photos._settle_file, threading.Lock(), [0], [0]

    def counted_settle(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return settle(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(photos, "_settle_file", counted_settle)
    reset_peak()
    rss_before = vm("VmRSS")

    def uploader(i: int) -> int:
        files = [(f"big{i}-{j}.png", pngs[per_upload * i + j], "image/png") for j in range(per_upload)]
        return api.upload(users.bob, *files).status_code

    with ThreadPoolExecutor(uploaders) as pool:
        uploads = [pool.submit(uploader, i) for i in range(uploaders)]
        latencies = health_while(api, uploads)
        statuses = [u.result(timeout=180) for u in uploads]
    assert statuses == [201] * uploaders, statuses
    assert second_worst(latencies) < HEALTH_WITHIN_S, f"worst /health {latencies[-1] * 1000:.0f} ms"
    slots = api.settings.max_concurrent_image_jobs
    assert most[0] == slots, f"{most[0]} decodes at once, the slots allow {slots}"
    peak = (vm("VmHWM") - rss_before) / MiB
    # One decode of these takes about 61 MiB here; two at once (the slots) measured 186 to 222
    # on a loaded machine (CI), so the bound sits well above that and well below eight at once.
    assert peak < 330, f"peak grew {peak:.0f} MiB: more decodes at once than the slots allow"


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_hostile_names_are_stored_printable_and_never_as_a_path(api, users, case):
    sent = HOSTILE_NAMES[case]
    r = api.upload(users.bob, (sent, make_image(800 + sorted(HOSTILE_NAMES).index(case)), "image/jpeg"))
    assert r.status_code == 201, r.text
    [result] = r.json()["results"]
    name = result["filename"]
    assert result["status"] == "new" and name and not has_unprintable(name), result
    assert "/" not in name and "\\" not in name and name not in (".", "..") and len(name) <= MAX_FILE_NAME_CHARS
    api.caught_up()
    photo = api.data(users.bob, "query($id: ID!) { photo(id: $id) { sourceRef } }", id=result["photo_id"])["photo"]
    assert photo["sourceRef"] == f"upload:{name}"


def test_a_content_bomb_is_taken_in_one_bounded_decode_with_health_fast(api, users):
    # Honest 7,745² pixels in 190 KB: the header tells no lie, so the image is taken, and
    # checking it costs one decode (172 MiB) in a CPU slot, off the event loop.
    data = content_bomb()
    assert len(data) < MAX_UPLOAD
    reset_peak()
    rss_before = vm("VmRSS")
    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(api.upload, users.bob, ("flat.png", data, "image/png"))
        latencies = health_while(api, [upload])
        r = upload.result(timeout=120)
    assert r.status_code == 201 and r.json()["results"][0]["status"] == "new", r.text
    assert second_worst(latencies) < HEALTH_WITHIN_S, f"worst /health {latencies[-1] * 1000:.0f} ms"
    peak = (vm("VmHWM") - rss_before) / MiB
    assert peak < 300, f"peak grew {peak:.0f} MiB"


def test_a_name_longer_than_a_part_header_may_be_is_a_clean_400(api, users):
    r = api.upload(users.bob, ("x" * 5000 + ".jpg", make_image(899), "image/jpeg"))
    assert r.status_code == 400 and r.json() == {"detail": "Invalid multipart data.", "code": "BAD_REQUEST", "params": {}}, r.text


def test_the_header_check_decodes_no_pixel_even_of_a_content_bomb(monkeypatch):
    """Pillow's PNG getexif() decoded the whole image to look for a trailing eXIf chunk: the
    header check of a 190 KB content bomb took 180 MB and most of a second (on the event
    loop, for a search example)."""
    from PIL import ImageFile

    from commands.images import read_header

    decoded = []
    jpeg, webp = make_image(5, (64, 48), "JPEG"), make_image(6, (64, 48), "WEBP")
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.format))
    assert (read_header(content_bomb(), 60_000_000).pixels, read_header(jpeg, 10_000).pixels,
            read_header(webp, 10_000).pixels) == (7745 * 7745, 64 * 48, 64 * 48)
    assert decoded == []


def test_health_answers_fast_while_a_content_bomb_is_a_search_example(api, users, monkeypatch):
    class NoFaces:  # the models are another suite's subject: here, the header check and the decode
        async def faces_in(self, image, model):
            return []

    monkeypatch.setitem(vars(api.system), "searcher", NoFaces())  # the System's cached searcher
    data = content_bomb()
    with ThreadPoolExecutor(1) as pool:  # three in a row: one slow /health may be the machine's
        sent = pool.submit(lambda: [example(api, users.bob, "flat.png", data) for _ in range(3)])
        latencies = health_while(api, [sent])
        answers = sent.result(timeout=120)
    for r in answers:
        assert r.status_code == 422 and r.json()["detail"] == "no face found in the example photo", r.text
    assert second_worst(latencies) < HEALTH_WITHIN_S, f"worst /health {latencies[-1] * 1000:.0f} ms"
