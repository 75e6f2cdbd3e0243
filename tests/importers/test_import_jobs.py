"""Import jobs from VK and Yandex.Disk through the core: the real event store (SQLite, and
PostgreSQL where cheap), the credential store, and the fake services over real HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from loguru import logger
from pydantic import SecretStr

from commands.app import FaceSearchApp
from commands.blobs import DirectoryBlobStore
from commands.credentials import (
    CredentialExpired,
    CredentialMissing,
    CredentialRevoked,
    credentials_table,
)
from commands.importers.base import BadLink
from commands.importers.tokens import TokenCipher
from domain.import_job import ImportStatus
from facesearch.services.imports import (
    ImportConfigError,
    cancel_import,
    credential_store,
    list_imports,
    prepare_import,
    resume_import,
    resume_open_imports,
    start_import,
)
from facesearch.settings import Settings
from tests.fakes import vk_server, yadisk_server
from tests.fakes.images import make_image
from tests.fakes.vk_server import FakeVk
from tests.fakes.yadisk_server import FakeYandexDisk

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOKEN_KEY = TokenCipher.generate_key()
VK_TOKEN = vk_server.GOOD_TOKEN
NESTED = {
    "cover.jpg": make_image(1),
    "contract.pdf": b"%PDF-1.4 not a photo",
    "trip": {
        "beach.png": make_image(2, "PNG"),
        "readme.txt": b"hello",
        "day 2": {"sunset.webp": make_image(3, "WEBP"), "clip.mp4": b"\x00\x00\x00\x18ftypmp42", "empty": {}},
    },
    "zz.jpeg": make_image(4),
}


def remote(settings: Settings, vk_base: str, yadisk_base: str, **overrides) -> Settings:
    """`settings` pointed at the fakes (loopback http allowed), with a token key and quick backoff."""
    return settings.model_copy(update={
        "token_key": SecretStr(TOKEN_KEY), "vk_api_base": vk_base, "yadisk_api_base": yadisk_base,
        "vk_id_base": vk_base.removesuffix("/method"), "import_allow_loopback_http": True,
        "import_backoff_seconds": 0.05, "vk_requests_per_second": 30.0,
        "vk_client_id": "51234", "vk_redirect_uri": "https://faces.example/api/oauth/vk/callback",
    } | overrides)


class World:
    """An event store, a credential store and both fake services."""

    def __init__(self, settings: Settings, vk: tuple[FakeVk, str], yadisk: tuple[FakeYandexDisk, str]) -> None:
        self.vk, vk_base = vk
        self.disk, disk_base = yadisk
        self.settings = remote(settings, vk_base, disk_base)
        self.settings.var_dir.mkdir(parents=True, exist_ok=True)
        self.app = FaceSearchApp(self.settings.resolved_event_store_dsn(),
                                 DirectoryBlobStore(self.settings.resolved_blob_dir()), self.settings.max_image_pixels)
        self.store = credential_store(self.settings)

    def start(self, link: str, **kwargs):
        return start_import(self.app, self.settings, owner=kwargs.pop("owner", "ann"), link=link,
                            credentials=self.store, **kwargs)

    def resume(self, import_id: UUID):
        return resume_import(self.app, self.settings, import_id, credentials=self.store)

    def events(self) -> list:
        return list(self.app.recorder.select_notifications(start=None, limit=1_000_000))

    def job_events(self, import_id: UUID) -> list:
        return list(self.app.events.get(import_id))

    def close(self) -> None:
        self.store.close()
        self.app.close()


@pytest.fixture
def fast_dir(tmp_path) -> Iterator[Path]:
    """A directory in memory where there is one: the event store and blobs fsync every photo,
    which on this machine's disk is most of a 2,500-photo import's time."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="fs-import-", dir=shm))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def world(fast_dir, vk, yadisk) -> Iterator[World]:
    """On SQLite."""
    w = World(Settings(var_dir=fast_dir / "var"), vk, yadisk)
    yield w
    w.close()


@pytest.fixture
def any_world(profile_settings, vk, yadisk) -> Iterator[World]:
    """The same, on SQLite and on PostgreSQL."""
    w = World(profile_settings, vk, yadisk)
    yield w
    w.close()


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


# ---------------------------------------------------------------- VK


def test_vk_community_with_three_albums_imports_completely(world):
    world.vk.add_community(123, "club_photos", [1200, 800, 500])
    cid = world.store.save("ann", "vk", VK_TOKEN)
    seen: list[dict[str, int]] = []
    result = world.start("https://vk.com/club_photos", credential_id=cid, progress=seen.append)

    assert result.status == ImportStatus.completed, result.reason
    assert result.counts == {"discovered": 2500, "stored": 2500, "skipped": 0, "failed": 0}
    names = kinds(world.job_events(result.import_id))
    assert names.count("PhotoStored") == 2500 and names[-1] == "ImportCompleted"
    job = world.app.get_import(result.import_id)
    assert (job.source, job.target, job.options) == ("vk", "https://vk.com/club_photos", {"credential_id": cid})
    assert world.vk.downloads == 2500
    assert seen[-1]["stored"] == 2500
    assert [s.import_id for s in list_imports(world.app, "ann")] == [result.import_id]


def test_private_album_fails_with_a_clear_message_and_imports_nothing(any_world):
    world = any_world
    world.vk.add_owner(-77)
    world.vk.add_album(-77, 5, "Закрытый", 10, private=True)
    result = world.start("https://vk.com/album-77_5", token=VK_TOKEN)

    assert result.status == ImportStatus.failed
    assert "access denied" in result.reason and "private" in result.reason
    events = world.job_events(result.import_id)
    assert kinds(events) == ["ImportRequested", "ImportFailed"]
    assert events[-1].reason == result.reason
    assert (events[-1].code, events[-1].params) == ("access_denied", {})  # for the client's own words
    assert world.vk.downloads == 0


def test_rate_limit_answers_slow_the_import_down_without_losing_photos(world):
    world.vk.add_community(55, "busy_club", [300, 200, 100])
    world.vk.error6_every = 3
    world.vk.error9_every = 4
    started = time.monotonic()
    result = world.start("vk.com/busy_club", token=VK_TOKEN)

    retries = world.vk.errors_sent.get(6, 0) + world.vk.errors_sent.get(9, 0)
    assert retries >= 2
    assert time.monotonic() - started >= retries * world.settings.import_backoff_seconds
    assert result.status == ImportStatus.completed, result.reason
    assert result.counts["stored"] == 600 and result.counts["failed"] == 0


def test_expired_token_stops_the_job_and_is_in_no_stored_event(any_world):
    world = any_world
    world.vk.add_community(123, "club_photos", [20])
    logged: list[str] = []
    sink = logger.add(lambda message: logged.append(str(message)), level="DEBUG")
    try:
        result = world.start("https://vk.com/club_photos", token=vk_server.EXPIRED_TOKEN)
    finally:
        logger.remove(sink)

    assert result.status == ImportStatus.failed
    assert "sign in with VK again" in result.reason
    assert kinds(world.job_events(result.import_id))[-1] == "ImportFailed"
    assert world.vk.downloads == 0
    secret = vk_server.EXPIRED_TOKEN.encode()
    states = [n.state for n in world.events()]
    assert states and not any(secret in state or b"expired-token" in state for state in states)
    assert not any(vk_server.EXPIRED_TOKEN in line for line in logged)
    assert vk_server.EXPIRED_TOKEN not in repr(result)


# ---------------------------------------------------------------- Yandex.Disk


def test_yandex_public_folder_imports_exactly_the_images_and_records_the_skipped(any_world):
    world = any_world
    world.disk.public["NestedKey1"] = NESTED
    result = world.start("https://disk.yandex.ru/d/NestedKey1")  # a public link needs no token

    assert result.status == ImportStatus.completed, result.reason
    assert result.counts == {"discovered": 7, "stored": 4, "skipped": 3, "failed": 0}
    events = world.job_events(result.import_id)
    stored = sorted(e.source_ref.rsplit(":", 1)[-1] for e in events if type(e).__name__ == "PhotoStored")
    assert stored == ["/cover.jpg", "/trip/beach.png", "/trip/day 2/sunset.webp", "/zz.jpeg"]
    skipped = {e.source_ref.rsplit("/", 1)[-1]: e.reason for e in events if type(e).__name__ == "PhotoSkipped"}
    assert skipped == {"contract.pdf": "not a photo (document)", "readme.txt": "not a photo (text)",
                       "clip.mp4": "not a photo (video)"}
    assert world.app.get_import(result.import_id).options == {}
    assert world.store.list("ann") == []


def test_yandex_own_disk_uses_the_saved_sign_in(world):
    world.disk.own = {"Photos": {"2019": {"a.jpg": make_image(11), "b.txt": b"x"}, "c.png": make_image(12, "PNG")}}
    with pytest.raises(CredentialMissing, match="sign in with Yandex.Disk first"):
        world.start("disk:/Photos")
    assert world.events() == []
    cid = world.store.save("ann", "yandex", yadisk_server.GOOD_TOKEN)
    result = world.start("disk:/Photos")
    assert result.counts == {"discovered": 3, "stored": 2, "skipped": 1, "failed": 0}
    assert world.app.get_import(result.import_id).options == {"credential_id": cid}
    assert world.disk.auth_headers_at_storage == 0


def test_checksum_mismatch_ends_as_photo_failed_with_the_reason(world):
    world.disk.public["NestedKey1"] = NESTED
    world.disk.wrong_md5.add("public:NestedKey1:/trip/beach.png")
    result = world.start("https://disk.yandex.ru/d/NestedKey1")

    assert result.status == ImportStatus.completed
    assert result.counts == {"discovered": 7, "stored": 3, "skipped": 3, "failed": 1}
    [failed] = [e for e in world.job_events(result.import_id) if type(e).__name__ == "PhotoFailed"]
    assert failed.source_ref.endswith("/trip/beach.png")
    assert "md5 checksum" in failed.reason and failed.code == "checksum_mismatch"


def test_same_bytes_from_vk_and_yandex_are_one_photo_with_two_provenance_records(world):
    world.vk.add_owner(-9)
    [photo_id] = world.vk.add_album(-9, 1, "Общий", 1).photo_ids
    world.disk.public["SharedKey1"] = {
        "same.jpg": make_image(photo_id, "JPEG", label=FakeVk.expected_largest(photo_id)),
        "other.jpg": make_image(777_777),
    }
    from_vk = world.start("https://vk.com/album-9_1", token=VK_TOKEN)
    from_disk = world.start("https://disk.yandex.ru/d/SharedKey1")
    assert from_vk.counts["stored"] == 1 and from_disk.counts["stored"] == 2

    [vk_stored] = [e for e in world.job_events(from_vk.import_id) if type(e).__name__ == "PhotoStored"]
    disk_stored = {e.source_ref: e for e in world.job_events(from_disk.import_id) if type(e).__name__ == "PhotoStored"}
    same = disk_stored["yadisk:public:SharedKey1:/same.jpg"]
    assert same.photo_id == vk_stored.photo_id and same.duplicate and not vk_stored.duplicate
    photo = world.app.get_photo(UUID(same.photo_id))
    assert photo.sources == [("vk", f"vk:photo-9_{photo_id}"), ("yadisk", "yadisk:public:SharedKey1:/same.jpg")]


# ---------------------------------------------------------------- links


@pytest.mark.parametrize("link", [
    "https://example.com/album-1_2",
    "file:///etc/passwd",
    "http://127.0.0.1/method/photos.get",
    "https://127.0.0.1/album-1_2",
    "http://vk.com/album-1_2",
    "https://vk.com/album-1_2/extra",
    "https://disk.yandex.ru/d/",
    "javascript:alert(1)",
    "",
])
def test_bad_links_are_refused_before_any_request_or_event(world, link):
    with pytest.raises(BadLink):
        world.start(link, token=VK_TOKEN)
    assert world.events() == []
    assert world.vk.requests == 0 and world.disk.requests == 0
    assert world.store.list("ann") == []  # not even the token was saved


def test_a_link_of_the_other_service_is_refused(world):
    with pytest.raises(BadLink, match="Yandex.Disk link, not VK"):
        world.start("https://disk.yandex.ru/d/NestedKey1", source="vk")
    assert world.events() == []


def test_plain_http_bases_are_refused_unless_loopback_and_allowed(world):
    world.vk.add_community(123, "club_photos", [3])
    strict = world.settings.model_copy(update={"import_allow_loopback_http": False})
    with pytest.raises(ImportConfigError, match="https"):
        start_import(world.app, strict, owner="ann", link="vk.com/club_photos", token=VK_TOKEN, credentials=world.store)
    remote_http = world.settings.model_copy(update={"vk_api_base": "http://api.example.net/method"})
    with pytest.raises(ImportConfigError):
        start_import(world.app, remote_http, owner="ann", link="vk.com/club_photos", token=VK_TOKEN,
                     credentials=world.store)
    assert world.events() == [] and world.vk.requests == 0


# ---------------------------------------------------------------- credentials


def test_tokens_are_encrypted_at_rest(any_world):
    world = any_world
    cid = world.store.save("ann", "vk", VK_TOKEN, expires_at=time.time() + 3600)
    with world.store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(credentials_table))]
    assert len(rows) == 1 and rows[0]["id"] == cid
    assert VK_TOKEN not in repr(rows) and "good-token" not in repr(rows)
    assert TokenCipher(TOKEN_KEY).decrypt(rows[0]["ciphertext"]) == VK_TOKEN
    assert world.store.token_for(cid) == VK_TOKEN == world.store.token_for(owner="ann", provider="vk")
    [info] = world.store.list("ann")
    assert (info.id, info.provider, info.status) == (cid, "vk", "active")
    assert VK_TOKEN not in repr(info) and VK_TOKEN not in repr(world.store)
    # Signing in again keeps the id (jobs that use it resume with the new token).
    assert world.store.save("ann", "vk", "vk1.a.another-token-0123456789") == cid
    assert world.store.token_for(cid) == "vk1.a.another-token-0123456789"
    with pytest.raises(CredentialMissing):
        world.store.token_for(cid, owner="bob")


def test_a_revoked_credential_can_neither_start_nor_resume_a_job(world):
    world.vk.add_community(123, "club_photos", [30])
    cid = world.store.save("ann", "vk", VK_TOKEN)
    prepared = prepare_import(world.app, world.settings, owner="ann", link="vk.com/club_photos",
                              credential_id=cid, credentials=world.store)
    prepared.source.close()  # recorded, never run: as if the process stopped right here
    assert world.store.revoke("ann", "vk") == 1
    events_before = len(world.events())

    with pytest.raises(CredentialRevoked, match="revoked"):
        world.start("vk.com/club_photos", credential_id=cid)
    with pytest.raises(CredentialMissing, match="sign in with VK first"):
        world.start("vk.com/club_photos")
    assert len(world.events()) == events_before

    result = world.resume(prepared.import_id)
    assert result.status == ImportStatus.failed and "revoked" in result.reason
    assert kinds(world.job_events(prepared.import_id))[-1] == "ImportFailed"
    assert world.vk.requests == 0
    [info] = world.store.list("ann")
    assert info.status == "revoked"
    with world.store.engine.connect() as conn:
        assert conn.execute(sa.select(credentials_table.c.ciphertext)).scalar_one() == ""


def test_revoking_during_a_run_stops_the_job_with_a_message(world):
    world.vk.add_community(123, "club_photos", [400])

    def revoke_at_120(counts: dict[str, int]) -> None:
        if counts["stored"] == 120:
            world.store.revoke("ann", "vk")

    result = world.start("vk.com/club_photos", token=VK_TOKEN, progress=revoke_at_120)
    assert result.status == ImportStatus.failed and "revoked" in result.reason
    assert 120 <= result.counts["stored"] < 400


# ---------------------------------------------------------------- crash and resume, cancel

CRASHING_CHILD = """
import sys
from commands.app import FaceSearchApp
from commands.blobs import DirectoryBlobStore
from facesearch.services.imports import start_import
from facesearch.settings import Settings
settings = Settings()
app = FaceSearchApp(settings.resolved_event_store_dsn(), DirectoryBlobStore(settings.resolved_blob_dir()),
                    settings.max_image_pixels)
start_import(app, settings, owner="ann", link=sys.argv[1], credential_id=sys.argv[2])
"""


def test_a_crash_midway_resumes_without_downloading_finished_photos_again(world):
    world.vk.add_community(321, "big_club", [500])
    cid = world.store.save("ann", "vk", VK_TOKEN)
    env = os.environ | {
        "FACESEARCH_VAR_DIR": str(world.settings.var_dir), "FACESEARCH_TOKEN_KEY": TOKEN_KEY,
        "FACESEARCH_VK_API_BASE": world.settings.vk_api_base, "FACESEARCH_IMPORT_ALLOW_LOOPBACK_HTTP": "true",
        "FACESEARCH_VK_REQUESTS_PER_SECOND": "30", "FACESEARCH_EVENT_STORE_DSN": world.settings.event_store_dsn,
    }
    child = subprocess.Popen([sys.executable, "-c", CRASHING_CHILD, "vk.com/big_club", cid], cwd=PROJECT_ROOT,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while world.vk.downloads < 200:
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child never got going"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)  # no cleanup, no last save
    finally:
        child.wait(10)

    [import_id] = world.app.open_import_ids()
    job = world.app.get_import(import_id)
    stored_before = {ref for ref, outcome in job.settled.items() if outcome == "stored"}
    assert 100 < len(stored_before) < 500
    downloads_before = dict(world.vk.downloaded)

    [result] = resume_open_imports(world.app, world.settings)
    assert result.status == ImportStatus.completed, result.reason
    assert result.counts == {"discovered": 500, "stored": 500, "skipped": 0, "failed": 0}
    names = kinds(world.job_events(import_id))
    assert names.count("PhotoStored") == 500 and names.count("PhotoDiscovered") == 500
    for ref in stored_before:  # "vk:photo-321_456123" was downloaded as "-321_456123_<size>"
        photo = ref.removeprefix("vk:photo")
        grown = {name for name, n in world.vk.downloaded.items()
                 if name.startswith(photo + "_") and n != downloads_before.get(name)}
        assert not grown, f"{ref} was downloaded again"
    assert world.vk.downloads - sum(downloads_before.values()) <= 500 - len(stored_before) + 8


def test_cancel_stops_a_running_import_and_it_is_not_resumed(world):
    world.vk.add_community(321, "big_club", [300])
    cancelled: list[UUID] = []

    def cancel_at_50(counts: dict[str, int]) -> None:
        if counts["stored"] == 50 and not cancelled:  # as the CLI or the API would, from elsewhere
            [import_id] = world.app.open_import_ids()
            cancelled.append(cancel_import(world.app, import_id).import_id)

    result = world.start("vk.com/big_club", token=VK_TOKEN, progress=cancel_at_50)
    assert result.status == ImportStatus.cancelled
    assert cancelled == [result.import_id]
    assert 50 <= result.counts["stored"] < 300
    assert kinds(world.job_events(result.import_id))[-1] == "ImportCancelled"
    assert world.app.open_import_ids() == []
    assert cancel_import(world.app, result.import_id).status == ImportStatus.cancelled  # twice is fine
    assert world.resume(result.import_id).status == ImportStatus.cancelled


# ---------------------------------------------------------------- VK ID sign-in


def test_vk_sign_in_through_the_oauth_routes(world):
    from urllib.parse import parse_qs, urlsplit

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import oauth

    api = FastAPI()
    api.include_router(oauth.router)
    api.state.credentials = world.store
    api.dependency_overrides[oauth.current_owner] = lambda: "ann"
    api.dependency_overrides[oauth.oauth_settings] = lambda: world.settings
    client = TestClient(api, follow_redirects=False)

    started = client.get("/api/oauth/vk/start")
    assert started.status_code in (302, 303, 307)
    query = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["location"]).query).items()}
    assert query["client_id"] == "51234" and query["code_challenge_method"] == "S256"
    world.vk.auth_codes["code-1"] = (query["code_challenge"], world.settings.vk_redirect_uri)

    forged = client.get("/api/oauth/vk/callback", params={"code": "code-1", "state": "forged", "device_id": "d"})
    assert "failed" in forged.headers["location"]
    done = client.get("/api/oauth/vk/callback", params={"code": "code-1", "state": query["state"], "device_id": "d"})
    assert "connected" in done.headers["location"]
    assert world.store.token_for(owner="ann", provider="vk") == VK_TOKEN
    grant = world.store.refresh_grant(world.store.active("ann", "vk").id)
    assert grant.device_id == "d" and grant.refresh_token in world.vk.refresh_tokens
    replay = client.get("/api/oauth/vk/callback", params={"code": "code-1", "state": query["state"], "device_id": "d"})
    assert "failed" in replay.headers["location"]  # a state is good for one sign-in only

    listed = client.get("/api/credentials").json()
    assert [(c["provider"], c["status"]) for c in listed] == [("vk", "active")]
    assert VK_TOKEN not in client.get("/api/credentials").text
    assert client.post("/api/credentials/vk/revoke").json() == {"revoked": 1}
    assert client.post("/api/credentials/dropbox/revoke").status_code == 404
    with pytest.raises(CredentialMissing):
        world.store.token_for(owner="ann", provider="vk")


# ---------------------------------------------------------------- VK token refresh


def save_vk_sign_in(world: World, token: str, *, expires_at: float | None = None, device_id: str = "dev-1") -> str:
    """A VK ID sign-in as the callback saves it: the token, a refresh token VK ID will honour, the device."""
    refresh = world.vk.issue_refresh_token(device_id)
    return world.store.save("ann", "vk", token, expires_at, refresh_token=refresh, device_id=device_id)


def test_an_expired_vk_token_is_renewed_once_and_the_job_continues(world):
    world.vk.add_community(123, "club_photos", [1500, 30])
    cid = save_vk_sign_in(world, VK_TOKEN)
    old_refresh = world.store.refresh_grant(cid).refresh_token

    def expire_at_600(counts: dict[str, int]) -> None:
        if counts["stored"] == 600:  # VK withdraws the token in the middle of the job
            world.vk.expired_tokens.add(VK_TOKEN)

    result = world.start("vk.com/club_photos", credential_id=cid, progress=expire_at_600)
    assert result.status == ImportStatus.completed, result.reason
    assert result.counts == {"discovered": 1530, "stored": 1530, "skipped": 0, "failed": 0}
    assert world.vk.refresh_requests == 1 and world.vk.errors_sent.get(5) == 1
    renewed = world.store.token_for(cid)
    assert renewed != VK_TOKEN and renewed in world.vk.valid_tokens
    grant = world.store.refresh_grant(cid)
    assert grant.refresh_token != old_refresh and grant.device_id == "dev-1"  # VK ID rotated it
    assert world.store.list("ann")[0].expires_at > time.time() + 3000
    assert not any(renewed.encode() in n.state for n in world.events())


def test_a_vk_token_past_its_lifetime_is_renewed_before_the_job_starts(world):
    world.vk.add_community(123, "club_photos", [5])
    world.vk.expired_tokens.add(VK_TOKEN)
    cid = save_vk_sign_in(world, VK_TOKEN, expires_at=time.time() - 60)
    with pytest.raises(CredentialExpired):
        world.store.token_for(cid)

    result = world.start("vk.com/club_photos")
    assert result.status == ImportStatus.completed, result.reason
    assert world.vk.refresh_requests == 1 and world.vk.errors_sent.get(5) is None
    assert world.app.get_import(result.import_id).options == {"credential_id": cid}


@pytest.mark.parametrize("refresh", ["refused", "none"])
def test_without_a_usable_refresh_token_an_expired_vk_token_stops_the_job(world, refresh):
    world.vk.add_community(123, "club_photos", [20])
    world.vk.expired_tokens.add(VK_TOKEN)
    if refresh == "refused":
        cid = save_vk_sign_in(world, VK_TOKEN)
        world.vk.refresh_tokens.clear()  # VK ID no longer honours it
    else:
        cid = world.store.save("ann", "vk", VK_TOKEN)
    logged: list[str] = []
    sink = logger.add(lambda message: logged.append(str(message)), level="DEBUG")
    try:
        result = world.start("vk.com/club_photos", credential_id=cid)
    finally:
        logger.remove(sink)

    assert result.status == ImportStatus.failed
    assert result.reason == "VK no longer accepts the access token (expired or revoked): sign in with VK again"
    assert world.vk.downloads == 0
    assert world.vk.refresh_requests == (1 if refresh == "refused" else 0)
    assert world.store.token_for(cid) == VK_TOKEN  # nothing half-renewed
    if refresh == "refused":
        assert any("could not be renewed" in line for line in logged)
        assert not any(t in line for line in logged for t in world.vk.issued_tokens + [VK_TOKEN])


def test_a_revoked_sign_in_is_never_renewed(world):
    cid = save_vk_sign_in(world, VK_TOKEN)
    world.store.revoke("ann", "vk")
    assert world.store.refresh_grant(cid) is None
    with pytest.raises(CredentialRevoked):
        world.store.renew(cid, "vk1.a.some-new-token-0123456789")
    assert world.store.list("ann")[0].status == "revoked"


# ---------------------------------------------------------------- CLI


def add_account(settings: Settings, name: str) -> str:
    """An account of the web client in `settings`' read-model database; its id."""
    import asyncio

    from api.users import UserStore
    from projections.db import make_engine

    async def create() -> str:
        engine = make_engine(settings.resolved_read_model_url())
        try:
            store = UserStore(engine)
            await store.create_tables()
            return (await store.create(name, f"{name}-password")).id
        finally:
            await engine.dispose()

    return asyncio.run(create())


def test_cli_imports_lists_and_cancels_without_a_token_on_the_command_line(world, monkeypatch):
    import json

    from typer.testing import CliRunner

    from facesearch.cli import main as cli
    from facesearch.settings import get_settings

    world.vk.add_community(123, "club_photos", [12])
    world.disk.public["NestedKey1"] = NESTED
    s = world.settings
    for name, value in {"VAR_DIR": s.var_dir, "TOKEN_KEY": TOKEN_KEY, "VK_API_BASE": s.vk_api_base,
                        "YADISK_API_BASE": s.yadisk_api_base, "IMPORT_ALLOW_LOOPBACK_HTTP": "true",
                        "VK_REQUESTS_PER_SECOND": "30"}.items():
        monkeypatch.setenv(f"FACESEARCH_{name}", str(value))
    monkeypatch.setenv("MY_VK_TOKEN", VK_TOKEN)
    get_settings.cache_clear()
    add_account(s, "ann")  # the CLI acts as the only account
    runner = CliRunner()
    try:
        vk = runner.invoke(cli.app, ["import", "vk", "vk.com/club_photos", "--token-env", "MY_VK_TOKEN"])
        assert vk.exit_code == 0, vk.output
        disk = runner.invoke(cli.app, ["import", "yadisk", "https://disk.yandex.ru/d/NestedKey1"])
        assert disk.exit_code == 0, disk.output
        # The saved sign-in serves the next VK import; no prompt, no argument.
        again = runner.invoke(cli.app, ["import", "vk", "vk.com/club_photos"])
        assert again.exit_code == 0, again.output
        bad = runner.invoke(cli.app, ["import", "vk", "http://127.0.0.1/x"])
        assert bad.exit_code == 2 and "https" in bad.output
        listed = runner.invoke(cli.app, ["import", "list", "--json"])
        rows = [json.loads(line) for line in listed.output.splitlines()]
        assert [(r["source"], r["status"], r["stored"]) for r in rows] == [
            ("vk", "completed", 12), ("yadisk", "completed", 4), ("vk", "completed", 12)]
        cancelled = runner.invoke(cli.app, ["import", "cancel", rows[0]["import_id"]])
        assert cancelled.exit_code == 0 and json.loads(cancelled.output.splitlines()[-1])["status"] == "completed"
        assert runner.invoke(cli.app, ["import", "cancel", "nope"]).exit_code == 2
        assert VK_TOKEN not in vk.output + again.output + listed.output
    finally:
        get_settings.cache_clear()


def test_an_upload_left_open_is_failed_on_resume_keeping_what_came(world):
    """Its files were in a browser that is gone: the job says so instead of staying open."""
    import_id = world.app.request_import(owner="ann", source="upload", target="a.jpg, b.jpg")
    job = world.app.get_import(import_id)
    job.discover("upload:0:a.jpg", "a.jpg")
    world.app.store_photo(make_image(1), owner="ann", source="upload", source_ref="upload:a.jpg", import_job=job,
                          job_ref="upload:0:a.jpg")
    result = world.resume(import_id)
    assert result.status == ImportStatus.failed and result.counts["stored"] == 1
    failed = world.job_events(import_id)[-1]
    assert (type(failed).__name__, failed.code) == ("ImportFailed", "upload_interrupted")


def test_failures_recorded_before_codes_read_with_an_empty_code(world):
    """PhotoFailed and ImportFailed version 1 (no code, no params) upcast to version 2."""
    import_id = world.app.request_import(owner="ann", source="upload", target="x")
    job = world.app.get_import(import_id)
    job.discover("upload:0:x", "x")
    job.record_failed("upload:0:x", "empty file", "EMPTY_FILE")
    job.fail("gone", "upload_interrupted")
    mapper = world.app.mapper
    for event in job.collect_events():
        stored = mapper.to_stored_event(event)
        state = mapper.transcoder.decode(stored.state)
        if "code" not in state:
            continue
        for key in ("code", "params", "class_version"):
            state.pop(key, None)  # as version 1 wrote it
        old = type(stored)(stored.originator_id, stored.originator_version, stored.topic, mapper.transcoder.encode(state))
        assert (mapper.to_domain_event(old).code, mapper.to_domain_event(old).params) == ("", {})
