from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
from loguru import logger
from pydantic import SecretStr

from commands.importers.tokens import TokenCipher, TokenKeyMissing, TokenUnreadable, mask
from domain.import_job import ImportStatus
from facesearch.imports import credential_store
from facesearch.settings import Settings
from tests.fakes import vk_server
from tests.importers.conftest import VK_REDIRECT

TOKEN = "vk1.a.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-secret"


def test_round_trip_and_the_ciphertext_does_not_contain_the_token():
    cipher = TokenCipher(TokenCipher.generate_key())
    sealed = cipher.encrypt(TOKEN)
    assert cipher.decrypt(sealed) == TOKEN
    assert TOKEN not in sealed and "AbCdEfGh" not in sealed
    assert cipher.encrypt(TOKEN) != sealed  # random IV each time
    assert "vk1" not in repr(cipher)


def test_comma_separated_keys_rotate():
    old, new = TokenCipher.generate_key(), TokenCipher.generate_key()
    sealed_with_old = TokenCipher(old).encrypt(TOKEN)
    rotated = TokenCipher(f"{new},{old}")
    assert rotated.decrypt(sealed_with_old) == TOKEN
    assert TokenCipher(new).decrypt(rotated.encrypt(TOKEN)) == TOKEN
    assert TokenCipher([new, old]).decrypt(sealed_with_old) == TOKEN


def test_wrong_or_missing_key():
    sealed = TokenCipher(TokenCipher.generate_key()).encrypt(TOKEN)
    with pytest.raises(TokenUnreadable):
        TokenCipher(TokenCipher.generate_key()).decrypt(sealed)
    with pytest.raises(TokenUnreadable):
        TokenCipher(TokenCipher.generate_key()).decrypt("garbage")
    with pytest.raises(TokenKeyMissing):
        TokenCipher("")
    with pytest.raises(TokenKeyMissing, match="not a valid key"):
        TokenCipher("too-short")


def test_mask():
    assert mask(TOKEN) == "vk1…[masked]"
    assert mask("short") == "[masked]"
    assert mask("") == "[empty]" and mask(None) == "[empty]"


def test_the_composition_root_makes_the_store_from_the_settings_key(tmp_path):
    from facesearch.imports import ImportConfigError

    key = TokenCipher.generate_key()
    settings = Settings(var_dir=tmp_path, token_key=SecretStr(key))
    store = credential_store(settings)
    try:
        cid = store.save("ann", "vk", TOKEN)
        assert store.token_for(cid) == TOKEN
    finally:
        store.close()
    with pytest.raises(ImportConfigError, match="FACESEARCH_TOKEN_KEY"):
        credential_store(Settings(var_dir=tmp_path, token_key=SecretStr("")))


def test_tokens_stay_out_of_logs_events_databases_and_answers_on_the_api_path(api_on_fakes, caplog):
    """Sign in with VK ID through the API, then import through GraphQL with the saved sign-in;
    VK says the token expired, so it is renewed with the refresh token on the way. No token
    (the first, the renewed one, the refresh tokens) is in a log line, an event, a database
    file in clear text, or an answer of the API."""
    api = api_on_fakes
    api.vk.add_community(123, "club_photos", [40])
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    caplog.set_level(logging.DEBUG)
    try:
        started = api.get("/api/oauth/vk/start")
        query = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["location"]).query).items()}
        api.vk.auth_codes["code-1"] = (query["code_challenge"], VK_REDIRECT)
        done = api.get("/api/oauth/vk/callback", code="code-1", state=query["state"], device_id="dev-1")
        assert "vk=connected" in done.headers["location"]
        assert api.get("/api/oauth/status").json()["vk"] == {"configured": True, "connected": True}
        api.vk.expired_tokens.add(vk_server.GOOD_TOKEN)  # VK now answers error 5 to the first token

        import_id = api.start_import("VK", "https://vk.com/club_photos")
        job = api.finished(import_id)
        api.get("/api/credentials")
        api.gql("{ imports(first: 5) { id status reason } }")
    finally:
        logger.remove(sink)

    assert job.status == ImportStatus.completed, job.reason
    assert job.counts["stored"] == 40
    assert api.vk.refresh_requests == 1
    renewed = api.store.token_for(owner=api.user_id, provider="vk")
    secrets = {vk_server.GOOD_TOKEN, renewed, *api.vk.issued_tokens}
    assert renewed != vk_server.GOOD_TOKEN and len(secrets) >= 4  # two access and two refresh tokens at least

    logged = "\n".join(lines + [record.getMessage() for record in caplog.records])
    events = [n.state for n in api.system.app.recorder.select_notifications(start=None, limit=1_000_000)]
    assert len(events) > 40
    stored = api.stored_bytes()
    assert stored  # the SQLite files were read
    answers = "\n".join(api.responses)
    for secret in secrets:
        assert secret not in logged, "a token was logged"
        assert not any(secret.encode() in state for state in events), "a token is in an event"
        assert secret.encode() not in stored, "a token is stored in clear text"
        assert secret not in answers, "an API answer shows a token"
