from __future__ import annotations

import pytest
from pydantic import SecretStr

from commands.importers.tokens import TokenCipher, TokenKeyMissing, TokenUnreadable, mask
from facesearch.settings import Settings

TOKEN = "vk1.a.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-secret"


def test_round_trip_and_the_ciphertext_does_not_contain_the_token():
    cipher = TokenCipher(TokenCipher.generate_key())
    sealed = cipher.encrypt(TOKEN)
    assert cipher.decrypt(sealed) == TOKEN
    assert TOKEN not in sealed and "AbCdEfGh" not in sealed
    assert cipher.encrypt(TOKEN) != sealed  # random IV each time
    assert "vk1" not in repr(cipher)


def test_from_settings_and_key_rotation():
    old, new = TokenCipher.generate_key(), TokenCipher.generate_key()
    sealed_with_old = TokenCipher(old).encrypt(TOKEN)
    rotated = TokenCipher.from_settings(Settings(token_key=SecretStr(f"{new},{old}")))
    assert rotated.decrypt(sealed_with_old) == TOKEN
    assert TokenCipher(new).decrypt(rotated.encrypt(TOKEN)) == TOKEN


def test_wrong_or_missing_key():
    sealed = TokenCipher(TokenCipher.generate_key()).encrypt(TOKEN)
    with pytest.raises(TokenUnreadable):
        TokenCipher(TokenCipher.generate_key()).decrypt(sealed)
    with pytest.raises(TokenUnreadable):
        TokenCipher(TokenCipher.generate_key()).decrypt("garbage")
    with pytest.raises(TokenKeyMissing):
        TokenCipher.from_settings(Settings(token_key=SecretStr("")))
    with pytest.raises(TokenKeyMissing, match="not a valid key"):
        TokenCipher("too-short")


def test_mask():
    assert mask(TOKEN) == "vk1…[masked]"
    assert mask("short") == "[masked]"
    assert mask("") == "[empty]" and mask(None) == "[empty]"
