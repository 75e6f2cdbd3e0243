"""The OAuth 2 authorization code flow with PKCE (RFC 7636, S256) for VK ID and Yandex OAuth,
through Authlib: the URL the user is sent to (a verifier kept server-side, its challenge and a
state in the URL) and the token requests (client authentication, the provider's error answer)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

# Authlib 1.9 warns at import, to every CLI user, that httpx is "deprecated" for httpx2 (its
# deprecate module first turns its warnings to "always"): not ours to act on, so not shown.
with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore")
    from authlib.common.security import generate_token
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

from commands.importers.base import SourceUnavailable

TOKEN_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class PkcePair:
    verifier: str
    challenge: str
    method: str = "S256"


@dataclass(frozen=True)
class AuthorizationRequest:
    """What to keep until the provider redirects back (the verifier and state are secrets)."""

    url: str
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)


class TokenRefused(Exception):
    """The token endpoint answered with an OAuth error (or without an access token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:200]


def code_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding (RFC 7636, S256)."""
    return str(create_s256_code_challenge(verifier))


def make_pkce(length: int = 64) -> PkcePair:
    """A fresh verifier (43 to 128 unreserved characters) and its S256 challenge."""
    if not 43 <= length <= 128:
        raise ValueError("a PKCE verifier is 43 to 128 characters long")
    verifier = generate_token(length)
    return PkcePair(verifier=verifier, challenge=code_challenge(verifier))


def start_authorization(authorize_endpoint: str, *, client_id: str, redirect_uri: str, scope: str) -> AuthorizationRequest:
    """A fresh verifier and state, and the authorization URL carrying the S256 challenge
    (`scope` left out when empty: the provider then grants what the app registered)."""
    verifier = make_pkce().verifier
    with OAuth2Client(client_id, redirect_uri=redirect_uri, scope=scope or None, code_challenge_method="S256") as client:
        # 48 letters and digits (285 bits): more than Authlib's default 30.
        url, state = client.create_authorization_url(authorize_endpoint, state=generate_token(48), code_verifier=verifier)
    return AuthorizationRequest(url=url, state=state, code_verifier=verifier)


def request_token(
    token_endpoint: str, provider: str, *, client_id: str, client_secret: str = "", extra_body: dict[str, str] | None = None,
    **form: str,
) -> dict[str, Any]:
    """POSTs a token request (`form` holds grant_type and its fields) and returns the answer.
    With a client secret the client authenticates with HTTP Basic, without one it names
    itself in the form (a public client). `extra_body` carries fields Authlib keeps for
    itself otherwise (VK ID wants `state` in the form). Raises `TokenRefused` for an OAuth
    error and `SourceUnavailable` when the provider does not answer sensibly."""
    method = "client_secret_basic" if client_secret else "none"
    body = urlencode(extra_body or {})
    with OAuth2Client(client_id, client_secret or None, token_endpoint_auth_method=method,
                      timeout=TOKEN_TIMEOUT_SECONDS, trust_env=False) as client:
        try:
            token = dict(client.fetch_token(token_endpoint, body=body, **form))
        except OAuthError as error:
            raise TokenRefused(str(error.description or error.error)) from None
        except httpx.TransportError as error:
            raise SourceUnavailable(f"{provider} did not answer ({type(error).__name__}); try again") from None
        except (httpx.HTTPStatusError, ValueError) as error:
            status = error.response.status_code if isinstance(error, httpx.HTTPStatusError) else "not JSON"
            raise SourceUnavailable(f"{provider} answered with something that is not a token ({status})") from None
    if not token.get("access_token"):
        raise TokenRefused("no access token in the answer")
    return token
