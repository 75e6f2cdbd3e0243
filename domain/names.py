"""Names people give things (accounts, files): what may be stored and shown of them.

A name that reaches a screen must look like what it is: no control characters (NUL
included), no invisible format characters (zero-width spaces, byte-order marks) and no
bidirectional overrides, which make `gpj.exe` read as `exe.jpg`.
"""

from __future__ import annotations

import hashlib
import unicodedata

# Control, format (zero-width, bidi), surrogate, private-use, unassigned; line and paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
REPLACEMENT = "_"
MAX_FILE_NAME_CHARS = 200  # a file name as stored and shown; longer ones are cut


def is_printable(char: str) -> bool:
    return unicodedata.category(char) not in _UNPRINTABLE


def has_unprintable(text: str) -> bool:
    return not all(is_printable(c) for c in text)


def printable(text: str) -> str:
    """`text` with every unprintable character replaced by `_`, so a stored file name is
    what a person sees (and two names differing only there stay apart from the rest)."""
    return "".join(c if is_printable(c) else REPLACEMENT for c in text)


def distinct_printable(text: str) -> str:
    """`printable(text)`, one-to-one: when a character was replaced, a digest of the original
    follows (`#` and 12 hex digits), so `a<RLO>.jpg` and `a<LF>.jpg` stay two references."""
    shown = printable(text)
    if shown == text:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{shown}#{digest}"


def file_name(text: str) -> str:
    """A file's name as stored and shown: printable, at most MAX_FILE_NAME_CHARS, trimmed."""
    return printable(text)[:MAX_FILE_NAME_CHARS].strip()


def account_name(text: str) -> str:
    """The one spelling of a user name: NFKC, case-folded, outer spaces trimmed, so that
    `Alice`, `alice` and `ａｌｉｃｅ` (full width) are one account. Unprintable characters are
    not removed here: a name holding them is refused (see `has_unprintable`)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold()).strip()
