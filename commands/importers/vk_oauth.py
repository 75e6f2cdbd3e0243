"""VK ID sign-in: the OAuth 2.1 authorization code flow with PKCE (S256).

1. `start_authorization` makes a verifier, its S256 challenge and a state, and the
   URL to send the user to; keep the verifier and state server-side.
2. VK ID redirects back with `code`, `state` and `device_id`; the caller finds the
   sign-in it kept by that state (`CredentialStore.take_sign_in`: no verifier for a state
   it did not start), and `exchange_code` trades the code (plus the verifier) for an
   access token, a refresh token and the token's lifetime (an hour).
3. When the access token has expired, `refresh_access_token` trades the refresh token
   (bound to the same `device_id`) for a new pair; VK ID rotates the refresh token.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from commands.importers import pkce
from commands.importers.base import TokenExpired
from commands.importers.pkce import AuthorizationRequest

DEFAULT_ID_BASE = "https://id.vk.com"
# Photos of the user and of communities they can see.
DEFAULT_SCOPE = "photos"


@dataclass(frozen=True)
class VkIdToken:
    access_token: str = field(repr=False)
    expires_at: float  # unix time
    user_id: int
    refresh_token: str | None = field(default=None, repr=False)
    scope: str = ""


class VkAuthError(TokenExpired):
    """VK ID refused the sign-in (wrong state, expired or reused code)."""

    code = "vk_auth_failed"


def start_authorization(
    *, client_id: str, redirect_uri: str, scope: str = DEFAULT_SCOPE, id_base: str = DEFAULT_ID_BASE,
) -> AuthorizationRequest:
    return pkce.start_authorization(
        f"{id_base.rstrip('/')}/authorize", client_id=client_id, redirect_uri=redirect_uri, scope=scope
    )


def exchange_code(
    *, client_id: str, redirect_uri: str, code: str, device_id: str, state: str, code_verifier: str,
    id_base: str = DEFAULT_ID_BASE, now: float | None = None,
) -> VkIdToken:
    """Trade the authorization code for an access token at {id_base}/oauth2/auth. `state` is
    the one VK ID returned, already matched to a sign-in started here (`code_verifier` is that
    sign-in's); VK ID wants it in the form too."""
    body = _request_token(id_base, "VK ID refused the sign-in", client_id=client_id, extra_body={"state": state},
                          grant_type="authorization_code", code=code, code_verifier=code_verifier,
                          device_id=device_id, redirect_uri=redirect_uri)
    return _vk_id_token(body, now)


def refresh_access_token(
    *, client_id: str, refresh_token: str, device_id: str, id_base: str = DEFAULT_ID_BASE, now: float | None = None,
) -> VkIdToken:
    """Trade a refresh token for a new access token (and a new refresh token) at
    {id_base}/oauth2/auth. `VkAuthError` when VK ID refuses (the refresh token expired,
    was used already, or the sign-in was withdrawn)."""
    state = secrets.token_urlsafe(32)
    body = _request_token(id_base, "VK ID refused to renew the sign-in", client_id=client_id, extra_body={"state": state},
                          grant_type="refresh_token", refresh_token=refresh_token, device_id=device_id)
    if body.get("state") is not None and not hmac.compare_digest(str(body["state"]).encode(), state.encode()):
        raise VkAuthError("VK ID's answer to renewing the sign-in does not belong to this request")
    return _vk_id_token(body, now)


def _request_token(id_base: str, refused: str, **request: Any) -> dict[str, Any]:
    try:
        return pkce.request_token(f"{id_base.rstrip('/')}/oauth2/auth", "VK ID", **request)
    except pkce.TokenRefused as refusal:
        raise VkAuthError(f"{refused}: {refusal.reason}") from None


def _vk_id_token(body: dict, now: float | None) -> VkIdToken:
    issued = time.time() if now is None else now
    return VkIdToken(
        access_token=body["access_token"],
        expires_at=issued + float(body.get("expires_in") or 0),
        user_id=int(body.get("user_id") or 0),
        refresh_token=body.get("refresh_token") or None,
        scope=str(body.get("scope") or ""),
    )
