from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
from loguru import logger
from pydantic import SecretStr

from commands.credentials import CredentialExpired, CredentialMissing, CredentialRevoked, CredentialStore
from commands.importers.base import TokenExpired
from commands.importers.tokens import TokenCipher, TokenKeyMissing, TokenUnreadable, mask
from domain.import_job import ImportStatus
from facesearch.services.imports import credential_store
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
    from facesearch.services.imports import ImportConfigError

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


def test_a_missing_sign_in_is_its_own_error_and_only_unusable_tokens_are_token_expired(tmp_path):
    store = credential_store(Settings(var_dir=tmp_path, token_key=SecretStr(TokenCipher.generate_key())))
    try:
        with pytest.raises(CredentialMissing, match="sign in with VK first") as missing:
            store.token_for(owner="ann", provider="vk")
        assert not isinstance(missing.value, TokenExpired) and missing.value.code == "credential_missing"
        with pytest.raises(CredentialMissing, match="no longer exists") as unknown:
            store.token_for("no-such-id")
        assert not isinstance(unknown.value, TokenExpired)

        expired = store.save("ann", "yandex", TOKEN, 1.0)
        with pytest.raises(CredentialExpired) as stale:
            store.token_for(expired)
        assert isinstance(stale.value, TokenExpired) and stale.value.code == "credential_expired"
        revoked = store.save("ann", "vk", TOKEN)
        assert store.revoke("ann", "vk") == 1
        with pytest.raises(CredentialRevoked) as withdrawn:
            store.token_for(revoked)
        assert isinstance(withdrawn.value, TokenExpired) and withdrawn.value.code == "credential_revoked"
    finally:
        store.close()


def test_a_sign_in_is_found_only_by_the_state_it_started_with_by_its_owner_once(tmp_path):
    now = [1000.0]
    store = CredentialStore(f"sqlite:///{tmp_path / 'events.db'}", TokenCipher(TokenCipher.generate_key()),
                            clock=lambda: now[0])
    try:
        store.put_sign_in("ann", "vk", "state-ann", "verifier-ann", expires_at=1600.0)
        assert store.take_sign_in("ann", "vk", "forged") is None  # a state the provider did not get from us
        assert store.take_sign_in("ann", "yandex", "state-ann") is None  # started for another provider
        store.put_sign_in("ann", "vk", "state-ann-2", "verifier-2", expires_at=1600.0)
        assert store.take_sign_in("bob", "vk", "state-ann-2") is None  # someone else's sign-in
        assert store.take_sign_in("ann", "vk", "state-ann-2") is None  # ... which is spent by that try
        store.put_sign_in("ann", "vk", "state-late", "verifier-late", expires_at=1600.0)
        now[0] = 1601.0
        assert store.take_sign_in("ann", "vk", "state-late") is None  # took too long
        store.put_sign_in("ann", "vk", "state-ok", "verifier-ok", expires_at=2000.0)
        assert store.take_sign_in("ann", "vk", "state-ok") == "verifier-ok"
        assert store.take_sign_in("ann", "vk", "state-ok") is None  # once
    finally:
        store.close()


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
