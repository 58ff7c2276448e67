"""Nickname normalisation (SPEC §5): NFKC, trimmed, 1–24 characters, nothing invisible, unique case-insensitively.

Hardening on top (docs/protocol.md, "Hardening"):

- **Bounded first.** Input longer than `NICKNAME_INPUT_MAX` code points is refused before NFKC, whose reordering of
  combining marks is quadratic: 240 KB of them took 21 s and froze the event loop.
- **Nothing invisible**, by Unicode's data: controls, formats, unassigned and private-use code points, and every
  `Default_Ignorable_Code_Point` (combining grapheme joiner, variation selectors, Mongolian and Khmer fillers, …),
  except inside an emoji sequence (UTS #51), where the zero-width joiner, VS-16, keycap and tags are what make
  👨‍👩‍👧, ❤️, 1️⃣ or a subdivision flag.
- **One alphabet.** A nickname whose letters come from more than one of Latin, Cyrillic and Greek is refused. Those
  three alphabets share look-alike letters (Latin `a`/Cyrillic `а`, Latin `o`/Greek `ο`), and a mix is how "Ann"
  gets impersonated by "Аnn". A name wholly in one of them is fine, and so is any mix with other scripts (digits,
  emoji, CJK, Arabic …), which do not share shapes with them.
- **No look-alikes in one room.** `TakenNames` holds the Unicode TR39 skeletons of the room's names: a name that
  looks like one already there (`сосо` in Cyrillic beside `coco`, `l0l` beside `lOl`) is `nickname_taken`.
- **Block list.** The operator's words, matched as substrings of the nickname's *block key*: NFKC, casefolded,
  with everything but letters and digits removed, so that `B.a d-Word` and `ＢＡＤＷＯＲＤ` both contain `badword`;
  and, unless `nickname_filter` is off, a default English list whose short words match only as whole words, so
  that `ShitHead` is refused and `Harshita` is not (rooms/game/nickname_filter.py).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import regex
from confusable_homoglyphs import confusables  # type: ignore[import-untyped]

from quizroom.rooms.game.errors import BadNickname
from quizroom.rooms.game.nickname_filter import block_key, english_words, refuses

NICKNAME_MAX = 24
# The longest input looked at, in code points. NFKC joins at most four code points into one (no canonical
# decomposition is longer), so anything past 4 × 24 cannot come out as a valid name except by absurd white space.
NICKNAME_INPUT_MAX = 256

# Categories that render as nothing or reorder text: controls (Cc), formats such as zero-width joiners and bidi
# overrides (Cf), unassigned (Cn), private use (Co), surrogates (Cs), and line/paragraph separators (Zl, Zp).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"})
# Blank, yet neither default-ignorable nor white space: the Braille blank (U+2800), used to pose as an empty name.
_BLANK = frozenset("\u2800")
_IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")
# UTS #51's "possible emoji" regex (section "EBNF and Regex"): emoji with a modifier, VS-16 (+ keycap) or tags,
# regional-indicator pairs, joined by ZWJ. Inside a match the joiner, selectors and tags are part of one picture.
_EMOJI_ELEMENT = r"(?:\p{RI}\p{RI}|\p{Emoji}(?:\p{EMod}|\uFE0F\u20E3?|[\U000E0020-\U000E007E]+\U000E007F)?)"
_EMOJI = regex.compile(rf"{_EMOJI_ELEMENT}(?:\u200D{_EMOJI_ELEMENT})*")
# Alphabets with look-alike letters: a nickname's letters may come from at most one of them.
_CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def normalise_nickname(raw: object, blocked: frozenset[str] = frozenset()) -> tuple[str, str]:
    """Return `(display, key)`: the nickname to show and the key that must be unique in a room.

    Raises `BadNickname` for anything that is not a 1–24 character visible name after NFKC and trimming, for a
    name mixing look-alike alphabets, and for a name containing a `blocked` word (rooms/game/nickname_filter.py).
    Inner runs of white space collapse to one space so that "a  b" and "a b" cannot pose as two players. The work
    is linear in the input and bounded by `NICKNAME_INPUT_MAX`, whatever the input.
    """
    if not isinstance(raw, str):
        raise BadNickname("must be a string")
    if len(raw) > NICKNAME_INPUT_MAX:
        raise BadNickname(f"must be at most {NICKNAME_MAX} characters")
    text = unicodedata.normalize("NFKC", raw)
    if has_invisible(text):
        raise BadNickname("must not contain control or invisible characters")
    display = " ".join(text.split())
    if not display:
        raise BadNickname("must not be empty")
    if len(display) > NICKNAME_MAX:
        raise BadNickname(f"must be at most {NICKNAME_MAX} characters")
    if len(confusable_scripts(display)) > 1:
        raise BadNickname("must not mix Latin, Cyrillic and Greek letters")
    if blocked and refuses(display, blocked):
        raise BadNickname("is not allowed here")
    return display, display.casefold()


def has_invisible(text: str) -> bool:
    """A control, format, unassigned, private-use or default-ignorable code point, but for the joiners, selectors
    and tags of an emoji sequence (which are all default-ignorable: most names have none, and skip the search)."""
    if _IGNORABLE.search(text):
        text = _EMOJI.sub(lambda emoji: _IGNORABLE.sub("", emoji.group()), text)
        if _IGNORABLE.search(text):
            return True
    return any(unicodedata.category(char) in _REFUSED_CATEGORIES or char in _BLANK for char in text)


def confusable_scripts(text: str) -> set[str]:
    """Which of Latin, Cyrillic and Greek the letters of `text` come from."""
    if text.isascii():  # the common case, without a name lookup per letter
        return {"LATIN"} if any(char.isalpha() for char in text) else set()
    found: set[str] = set()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            for script in _CONFUSABLE_SCRIPTS:
                if name.startswith(script):
                    found.add(script)
    return found


# --- look-alikes ---------------------------------------------------------------------------------------------------


def prototype_table(graph: Mapping[str, Sequence[Mapping[str, str]]]) -> dict[str, str]:
    """Each confusable character → the prototype it is shown as, from confusables.txt as confusable-homoglyphs has it.

    The package keeps every line `source ; prototype` of Unicode's confusables.txt as an edge both ways (and wraps
    right-to-left text in LEFT-TO-RIGHT MARKs, dropped here). Sources are single code points and prototypes never
    are sources, so each connected component is one prototype with the characters mapped to it: the prototype is
    the only multi-character node, or the node joined to all others. In a component of just two characters the
    direction is lost and either one is taken (the NFD-stable one first, as prototypes are NFD): keys built from
    this table are then equal exactly when TR39 skeletons are, because each class is relabelled consistently —
    which is all a uniqueness check needs. (tests/system/test_nicknames.py checks it against the package's pairs.)
    """
    neighbours: dict[str, set[str]] = {}
    for node, edges in graph.items():
        here = node.replace("\u200e", "")
        for edge in edges:
            there = edge["c"].replace("\u200e", "")
            neighbours.setdefault(here, set()).add(there)
            neighbours.setdefault(there, set()).add(here)
    table: dict[str, str] = {}
    seen: set[str] = set()
    for start in neighbours:
        if start in seen:
            continue
        component, todo = {start}, [start]
        while todo:
            for other in neighbours[todo.pop()] - component:
                component.add(other)
                todo.append(other)
        seen |= component
        prototype = min(
            component,
            key=lambda n: (len(n) == 1, -len(neighbours[n]), unicodedata.normalize("NFD", n) != n, n),
        )
        table.update((node, prototype) for node in component if len(node) == 1 and node != prototype)
    # A multi-character prototype is written in other classes' prototypes; where a two-character class was
    # labelled by its source, relabel those characters too, so that typing the sequence gives the same key.
    single = {char: prototype for char, prototype in table.items() if len(prototype) == 1}
    return {char: "".join(single.get(c, c) for c in prototype) for char, prototype in table.items()}


_PROTOTYPES = {ord(char): prototype for char, prototype in prototype_table(confusables.confusables_data).items()}


def skeleton(text: str) -> str:
    """Unicode TR39's skeleton (up to a relabelling of classes): NFD, default-ignorables out, prototypes, NFD."""
    decomposed = _IGNORABLE.sub("", unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", decomposed.translate(_PROTOTYPES))


@functools.lru_cache(maxsize=4096)  # a join asks three times (check, reserve, add); kicks and restores once more
def lookalike_keys(nickname: str) -> frozenset[str]:
    """What a (normalised) nickname looks like: the skeletons of it as shown and of its casefolded form.

    Two names clash when these sets meet. The casefolded skeleton keeps SPEC's rule (names equal ignoring case
    clash) and catches lower-case look-alikes; the skeleton as shown catches those that only upper case shares
    (Cyrillic `ВОВ` and Latin `BOB`; `Ian` and `lan` in a sans-serif font).
    """
    folded = nickname.casefold()
    return frozenset((skeleton(nickname), skeleton(folded)) if folded != nickname else (skeleton(nickname),))


class TakenNames:
    """The names of a room's players and of joins still committing, by what they look like.

    Players are counted, so that a room restored with two look-alikes (joined before this rule) frees the look
    only when both have left. A reservation is held until its player is added or the join is given up.
    """

    __slots__ = ("_players", "_reserved")

    def __init__(self, nicknames: Iterable[str] = ()) -> None:
        self._players: dict[str, int] = {}
        self._reserved: set[str] = set()
        for nickname in nicknames:
            self.add(nickname)

    def clashes(self, nickname: str) -> bool:
        return any(key in self._players or key in self._reserved for key in lookalike_keys(nickname))

    def reserve(self, nickname: str) -> None:
        self._reserved |= lookalike_keys(nickname)

    def release(self, nickname: str) -> None:
        self._reserved -= lookalike_keys(nickname)

    def add(self, nickname: str) -> None:
        keys = lookalike_keys(nickname)
        self._reserved -= keys
        for key in keys:
            self._players[key] = self._players.get(key, 0) + 1

    def remove(self, nickname: str) -> None:
        for key in lookalike_keys(nickname):
            left = self._players.get(key, 0) - 1
            if left > 0:
                self._players[key] = left
            else:
                self._players.pop(key, None)


# --- block list ----------------------------------------------------------------------------------------------------


def parse_blocklist(lines: Iterable[str]) -> frozenset[str]:
    """One word a line; blank lines and `#` comments are skipped; each word is reduced to its block key."""
    words = (block_key(line) for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return frozenset(word for word in words if word)


def load_blocklist(path: str, english: bool = False) -> frozenset[str]:
    """The block list of a server: the file named by `nickname_blocklist_file` (UTF-8; an empty path means none) and,
    with `english` (`nickname_filter`), the default English list. Read once at start-up, never per join."""
    words = english_words() if english else frozenset()
    if not path:
        return words
    return words | parse_blocklist(Path(path).read_text(encoding="utf-8").splitlines())
