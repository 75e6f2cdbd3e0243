"""Signing in with Yandex ID for imports from the user's own Yandex.Disk: the OAuth 2.0
authorization code flow, with PKCE (S256) as Yandex OAuth supports it
(https://yandex.ru/dev/id/doc/en/codes/code-url).

1. `start_authorization` makes a verifier, its challenge and a state, and the URL of
   `{oauth_base}/authorize?response_type=code&client_id=…&redirect_uri=…&state=…
   &code_challenge=…&code_challenge_method=S256[&scope=…]`; keep the verifier and state
   server-side.
2. Yandex OAuth redirects back with `code` and `state` (or `error`); the caller finds the
   sign-in it kept by that state (`CredentialStore.take_sign_in`: no verifier for a state
   it did not start), and `exchange_code` POSTs `grant_type=authorization_code`, the code and the verifier
   to `{oauth_base}/token`, the app's id and secret in a Basic authorization header. The
   answer is `{"token_type": "bearer", "access_token", "expires_in", "refresh_token"}`,
   or `{"error", "error_description"}` with HTTP 400.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from commands.importers import pkce
from commands.importers.base import TokenExpired
from commands.importers.pkce import AuthorizationRequest

DEFAULT_OAUTH_BASE = "https://oauth.yandex.ru"
# Reading files on Yandex.Disk (the app must be registered with this permission).
DEFAULT_SCOPE = "cloud_api:disk.read"


@dataclass(frozen=True)
class YandexToken:
    access_token: str = field(repr=False)
    expires_at: float | None  # unix time; None when Yandex gave no lifetime
    refresh_token: str | None = field(default=None, repr=False)
    scope: str = ""


class YandexAuthError(TokenExpired):
    """Yandex OAuth refused the sign-in (wrong state, expired or reused code, wrong app secret)."""

    code = "yandex_auth_failed"


def start_authorization(
    *, client_id: str, redirect_uri: str, scope: str = DEFAULT_SCOPE, oauth_base: str = DEFAULT_OAUTH_BASE,
) -> AuthorizationRequest:
    return pkce.start_authorization(
        f"{oauth_base.rstrip('/')}/authorize", client_id=client_id, redirect_uri=redirect_uri, scope=scope
    )


def exchange_code(
    *, client_id: str, client_secret: str, code: str, code_verifier: str, oauth_base: str = DEFAULT_OAUTH_BASE,
    now: float | None = None,
) -> YandexToken:
    """Trade the confirmation code for an OAuth token at {oauth_base}/token; `code_verifier`
    is that of the sign-in the returned state was matched to (`CredentialStore.take_sign_in`).
    With the app's secret the app authenticates with HTTP Basic, as Yandex documents."""
    try:
        body = pkce.request_token(f"{oauth_base.rstrip('/')}/token", "Yandex OAuth", client_id=client_id,
                                  client_secret=client_secret, grant_type="authorization_code", code=code,
                                  code_verifier=code_verifier)
    except pkce.TokenRefused as refusal:
        raise YandexAuthError(f"Yandex refused the sign-in: {refusal.reason}") from None
    issued = time.time() if now is None else now
    lifetime = float(body.get("expires_in") or 0)
    return YandexToken(
        access_token=str(body["access_token"]),
        expires_at=issued + lifetime if lifetime > 0 else None,
        refresh_token=body.get("refresh_token") or None,
        scope=str(body.get("scope") or ""),
    )
