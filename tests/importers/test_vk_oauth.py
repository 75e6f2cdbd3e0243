from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from commands.importers.pkce import code_challenge, make_pkce
from commands.importers.vk_oauth import VkAuthError, exchange_code, refresh_access_token, start_authorization
from tests.fakes.vk_server import GOOD_TOKEN


def test_pkce_challenge_is_s256_of_the_verifier():
    # RFC 7636, appendix B.
    assert code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    pair = make_pkce()
    assert 43 <= len(pair.verifier) <= 128
    digest = hashlib.sha256(pair.verifier.encode()).digest()
    assert pair.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert make_pkce().verifier != pair.verifier


def test_authorize_url_carries_the_challenge_and_state():
    request = start_authorization(client_id="51234", redirect_uri="https://faces.example/vk/callback")
    parts = urlsplit(request.url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.scheme == "https" and parts.netloc == "id.vk.com" and parts.path == "/authorize"
    assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == code_challenge(request.code_verifier)
    assert query["state"] == request.state
    assert request.code_verifier not in request.url
    assert request.code_verifier not in repr(request)


def test_exchange_code_returns_token_expiry_and_user(vk):
    fake, base = vk
    id_base = base.removesuffix("/method")
    redirect = "https://faces.example/vk/callback"
    request = start_authorization(client_id="51234", redirect_uri=redirect, id_base=id_base)
    challenge = parse_qs(urlsplit(request.url).query)["code_challenge"][0]
    fake.auth_codes["code-1"] = (challenge, redirect)
    token = exchange_code(client_id="51234", redirect_uri=redirect, code="code-1", device_id="dev",
                          state=request.state, code_verifier=request.code_verifier, id_base=id_base, now=1000.0)
    assert token.access_token == GOOD_TOKEN and token.user_id == 1234567 and token.expires_at == 4600.0
    assert GOOD_TOKEN not in repr(token)
    # The code is single-use (a wrong state never gets here: see test_tokens' sign-in test).
    with pytest.raises(VkAuthError, match="refused"):
        exchange_code(client_id="51234", redirect_uri=redirect, code="code-1", device_id="dev",
                      state=request.state, code_verifier=request.code_verifier, id_base=id_base)


def test_refresh_trades_the_refresh_token_for_a_new_pair_once(vk):
    fake, base = vk
    id_base = base.removesuffix("/method")
    refresh = fake.issue_refresh_token("dev-1")
    token = refresh_access_token(client_id="51234", refresh_token=refresh, device_id="dev-1", id_base=id_base,
                                 now=1000.0)
    assert token.access_token in fake.valid_tokens and token.access_token != GOOD_TOKEN
    assert token.expires_at == 4600.0 and token.refresh_token and token.refresh_token != refresh
    assert refresh not in repr(token) and token.access_token not in repr(token)
    with pytest.raises(VkAuthError, match="refused to renew"):  # rotated: the old one is spent
        refresh_access_token(client_id="51234", refresh_token=refresh, device_id="dev-1", id_base=id_base)
    with pytest.raises(VkAuthError, match="refused to renew"):  # bound to its device
        refresh_access_token(client_id="51234", refresh_token=token.refresh_token, device_id="other", id_base=id_base)
