"""Tokens at rest and in logs: `TokenCipher` encrypts VK / Yandex tokens with the key it
is given (the composition root passes the settings' `token_key`; Fernet: AES-128-CBC +
HMAC-SHA256, authenticated); `mask` shows a token in logs without revealing it."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenKeyMissing(RuntimeError):
    """No usable `token_key` is configured."""


class TokenUnreadable(ValueError):
    """The stored ciphertext was not made with any of the configured keys, or was altered."""


class TokenCipher:
    """Encrypts and decrypts tokens. `keys` are Fernet keys (a list, or one comma-separated
    string), newest first: encryption uses the first, decryption tries each, so keys can
    be rotated by prepending."""

    def __init__(self, keys: str | bytes | list[str | bytes]) -> None:
        raw = [keys] if isinstance(keys, (str, bytes)) else list(keys)
        parsed: list[Fernet] = []
        for key in raw:
            for part in (key.decode() if isinstance(key, bytes) else key).split(","):
                if part.strip():
                    try:
                        parsed.append(Fernet(part.strip().encode()))
                    except (ValueError, TypeError):
                        raise TokenKeyMissing(
                            "token_key is not a valid key: generate one with "
                            "`python -c 'from commands.importers.tokens import TokenCipher; "
                            "print(TokenCipher.generate_key())'`"
                        ) from None
        if not parsed:
            raise TokenKeyMissing("set FACESEARCH_TOKEN_KEY to store VK and Yandex.Disk tokens")
        self._fernet = MultiFernet(parsed)

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except (InvalidToken, ValueError):
            raise TokenUnreadable("the stored token cannot be decrypted with the configured token_key") from None

    def __repr__(self) -> str:
        return "TokenCipher([masked])"


def mask(secret: str | None) -> str:
    """A loggable stand-in for a secret: "vk1.a.AbC…" -> "vk1…[masked]"; short secrets
    show nothing of themselves."""
    if not secret:
        return "[empty]"
    if len(secret) < 16:
        return "[masked]"
    return f"{secret[:3]}…[masked]"
