"""Nickname normalisation (SPEC §5): NFKC, trimmed, 1–24 characters, nothing invisible, unique case-insensitively.

Two hardening rules on top (docs/protocol.md, "Hardening"):

- **One alphabet.** A nickname whose letters come from more than one of Latin, Cyrillic and Greek is refused. Those
  three alphabets share look-alike letters (Latin `a`/Cyrillic `а`, Latin `o`/Greek `ο`), and a mix is how "Ann"
  gets impersonated by "Аnn". A name wholly in one of them is fine, and so is any mix with other scripts (digits,
  emoji, CJK, Arabic …), which do not share shapes with them.
- **Block list.** An optional list of words, matched as substrings of the nickname's *block key*: NFKC, casefolded,
  with everything but letters and digits removed, so that `B.a d-Word` and `ＢＡＤＷＯＲＤ` both contain `badword`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from pathlib import Path

from quizroom.rooms.errors import BadNickname

NICKNAME_MAX = 24

# Categories that render as nothing or reorder text: controls (Cc), formats such as zero-width joiners and bidi
# overrides (Cf), unassigned (Cn), private use (Co), surrogates (Cs), and line/paragraph separators (Zl, Zp).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"})
# Invisible or blank characters that Unicode files under other categories.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
# Alphabets with look-alike letters: a nickname's letters may come from at most one of them.
_CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def normalise_nickname(raw: object, blocked: frozenset[str] = frozenset()) -> tuple[str, str]:
    """Return `(display, key)`: the nickname to show and the key that must be unique in a room.

    Raises `BadNickname` for anything that is not a 1–24 character visible name after NFKC and trimming, for a
    name mixing look-alike alphabets, and for a name containing a `blocked` word (block keys, see `block_key`).
    Inner runs of white space collapse to one space so that "a  b" and "a b" cannot pose as two players.
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
    if len(confusable_scripts(display)) > 1:
        raise BadNickname("must not mix Latin, Cyrillic and Greek letters")
    if blocked:
        key = block_key(display)
        if any(word in key for word in blocked):
            raise BadNickname("is not allowed here")
    return display, display.casefold()


def confusable_scripts(text: str) -> set[str]:
    """Which of Latin, Cyrillic and Greek the letters of `text` come from."""
    found: set[str] = set()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            for script in _CONFUSABLE_SCRIPTS:
                if name.startswith(script):
                    found.add(script)
    return found


def block_key(text: str) -> str:
    """NFKC, casefolded, letters and digits only: what block-list words are searched in."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(char for char in folded if unicodedata.category(char)[0] in "LN")


def parse_blocklist(lines: Iterable[str]) -> frozenset[str]:
    """One word a line; blank lines and `#` comments are skipped; each word is reduced to its block key."""
    words = (block_key(line) for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return frozenset(word for word in words if word)


def load_blocklist(path: str) -> frozenset[str]:
    """The block list file named by `nickname_blocklist_file` (UTF-8); an empty path means no list."""
    if not path:
        return frozenset()
    return parse_blocklist(Path(path).read_text(encoding="utf-8").splitlines())
