"""The password policy: long enough, and not one that guessing tries first.

Common passwords, keyboard walks, repeats, dates and dictionary words are found by
zxcvbn (Dropbox's estimator; its Python port ships the frequency lists), whose score 2
means about a million guesses or more. Length is counted in characters after trimming,
so nine spaces are no password at all.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

MIN_LENGTH = 10
MIN_SCORE = 2  # zxcvbn: 0 < 10^3 guesses, 1 < 10^6, 2 < 10^8, 3 < 10^10, 4 more
# zxcvbn refuses longer input (its matching grows fast); a longer password is scored by its start.
_SCORED_CHARS = 72


def weakness(password: str, username: str = "") -> str | None:
    """Why `password` is refused, in words a person can act on; None when it is acceptable."""
    if not password.strip():
        return "a password cannot be only spaces"
    if len(password.strip()) < MIN_LENGTH:
        return f"a password is at least {MIN_LENGTH} characters"
    if username and password.strip().casefold() == username.casefold():
        return "a password must differ from the user name"
    result = zxcvbn(password[:_SCORED_CHARS])
    if result["score"] < MIN_SCORE:
        hint = result["feedback"].get("warning") or "it is among the first ones guessing tries"
        return f"this password is too easy to guess ({hint.rstrip('.')}): add words or characters"
    return None
