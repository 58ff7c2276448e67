"""Nickname normalisation (SPEC §5): NFKC, trimmed, 1–24 characters, nothing invisible, unique case-insensitively."""

from __future__ import annotations

import unicodedata

from quizroom.rooms.errors import BadNickname

NICKNAME_MAX = 24

# Categories that render as nothing or reorder text: controls (Cc), formats such as zero-width joiners and bidi
# overrides (Cf), unassigned (Cn), private use (Co), surrogates (Cs), and line/paragraph separators (Zl, Zp).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"})
# Invisible or blank characters that Unicode files under other categories.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")


def normalise_nickname(raw: object) -> tuple[str, str]:
    """Return `(display, key)`: the nickname to show and the key that must be unique in a room.

    Raises `BadNickname` for anything that is not a 1–24 character visible name after NFKC and trimming. Inner runs
    of white space collapse to one space so that "a  b" and "a b" cannot pose as two players.
    """
    if not isinstance(raw, str):
        raise BadNickname("must be a string")
    text = unicodedata.normalize("NFKC", raw)
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES or char in _INVISIBLE:
            raise BadNickname("must not contain control or invisible characters")
    display = " ".join(text.split())
    if not display:
        raise BadNickname("must not be empty")
    if len(display) > NICKNAME_MAX:
        raise BadNickname(f"must be at most {NICKNAME_MAX} characters")
    return display, display.casefold()
