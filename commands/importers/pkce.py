"""PKCE (RFC 7636, S256) for the OAuth authorization code flows of VK ID and Yandex OAuth:
a verifier kept server-side, its challenge and a state in the URL the user is sent to."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode


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


def code_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding (RFC 7636, S256)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_pkce(length: int = 64) -> PkcePair:
    """A fresh verifier (43 to 128 unreserved characters) and its S256 challenge."""
    if not 43 <= length <= 128:
        raise ValueError("a PKCE verifier is 43 to 128 characters long")
    verifier = secrets.token_urlsafe(96)[:length]
    return PkcePair(verifier=verifier, challenge=code_challenge(verifier))


def start_authorization(authorize_endpoint: str, *, client_id: str, redirect_uri: str, scope: str) -> AuthorizationRequest:
    """A fresh verifier and state, and the authorization URL carrying the S256 challenge
    (`scope` left out when empty: the provider then grants what the app registered)."""
    pkce = make_pkce()
    state = secrets.token_urlsafe(32)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    if scope:
        query["scope"] = scope
    return AuthorizationRequest(url=f"{authorize_endpoint}?{urlencode(query)}", state=state, code_verifier=pkce.verifier)
