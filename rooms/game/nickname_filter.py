"""Which nicknames a block list refuses, and the default English list (docs/protocol.md, "Hardening" → block list).

A block list is a `frozenset[str]` of block words (it travels in `RoomLimits.blocked_words`), each matched by its
form:

- `word` — letters and digits only: anywhere in the nickname's *block key* (NFKC, casefolded, letters and digits
  only), so `B.a d-Word` and `ＢＡＤＷＯＲＤ` contain `badword`. The operator's `nickname_blocklist_file` gives these.
- `=word` — only as a whole *token* of the nickname. Tokens are its runs of letters and digits, cut where a small
  letter meets a capital (`ShitHead` → `shit`, `head`), each also cut where letters meet digits (`Poo69` → `poo`,
  `69`), and the word that a run of single characters spells (`S.H.I.T` → `shit`). So `Shit Head`, `ShitHead`,
  `shit69`, `SH1T` and `S.H.I.T` contain `=shit`; `Ishita`, `Harshit` and `Kinoshita` do not, and neither does
  `Ana L` contain `=anal` (its whole block key would).
- `~text` — as written (casefolded, NFKC), inside the casefolded nickname with its white space removed: list entries
  that spell a word with symbols (`$hit`, `a$$`) or are one (🖕), which a block key would reduce to innocent letters
  (`hit`, `a`).

The default list is glin-profanity's English dictionary (README, "Dependency notes"), sorted into those forms by the
rule `english_block_words` documents. Matching is compiled once per list and is linear in the nickname: a set lookup
per token and per substring of the key that is as long as some `word`, never a scan of the list.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import regex

WHOLE = "="  # the prefix of a block word matched only as a whole token
LITERAL = "~"  # the prefix of a block word matched as written, symbols included
# The length rule of the default list, in block-key characters (letters and digits). Chosen by measuring the
# English list against 136,000 distinct names — 31,000 first names and 111,000 surnames, from the US Census 1990
# files and Faker's locales — and the 73,000 words of Debian's American English dictionary:
# - shorter than 3: dropped. The list's `bs`, `mf` and `xx` are someone's initials, and `Xx` dresses up gamer tags.
# - 3 to 7: whole tokens only. As substrings they refused 48 first names at a cut of 4 (Anusha, Analía …: `anal`,
#   `anus`), 7 at 5 (Yasemen, Dildora …), 2 at 6 (Jerotich, Cherotich: `erotic`), and surnames such as Cummings,
#   Adcock, Dickens, Butterfield, Kinoshita or Cecchi; as whole tokens they refuse three first names (see below).
# - 8 and more: anywhere. None of the 136,000 names contains one, and the dictionary words that do are forms of
#   the listed word itself (`bullshits`, `fingerings`).
# What the whole-token rule still refuses: names that *are* a list word — the first names Dick, Lolita and Kike
# (Spanish for Enrique), surnames such as Butt, Poon or Hooker when typed as a word of their own. docs/protocol.md
# tells the trade-off; the operator switches the default list off with `nickname_filter=0`.
ENGLISH_MIN = 3
ANYWHERE_MIN = 8
_SEPARATORS = frozenset(" -_.'")  # what joins the words of a list entry without spelling a letter

# Runs of letters, marks and digits; the places inside a run where a small letter meets a capital, or where a run of
# capitals ends in one that starts a small-letter word (`SHITHead` → `SHIT`, `Head`).
_RUN = regex.compile(r"[\p{L}\p{M}\p{N}]+")
_CAMEL = regex.compile(r"(?<=\p{Ll}\p{M}*)(?=\p{Lu})|(?<=\p{Lu})(?=\p{Lu}\p{Ll})")
_DIGITS_OR_NOT = regex.compile(r"\p{N}+|[^\p{N}]+")
_ASCII_NON_ALNUM = regex.compile(r"[^a-z0-9]+")


def block_key(text: str) -> str:
    """NFKC, casefolded, letters and digits only: what block-list words are searched in."""
    if text.isascii():  # the common case: NFKC leaves ASCII alone and casefolding is lower-casing
        return _ASCII_NON_ALNUM.sub("", text.lower())
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(char for char in folded if unicodedata.category(char)[0] in "LN")


def block_tokens(text: str) -> set[str]:
    """The words a nickname is made of, as block keys (see the module docstring)."""
    tokens: set[str] = set()
    spelled = ""  # the run of single characters going on, as in S.H.I.T
    for run in _RUN.findall(text):
        # Most runs are one word (`Ann`, `ANN`, `ann2`): no capital to cut at, and no regex call.
        pieces = (run,) if run[1:].islower() or run.isupper() or run.isdigit() else _CAMEL.split(run)
        for piece in pieces:
            key = piece.lower() if piece.isascii() else block_key(piece)  # a run has only letters, marks, digits
            if len(piece) == 1:
                spelled += key
                continue
            if len(spelled) > 1:
                tokens.add(spelled)
            spelled = ""
            tokens.add(key)
            if not (piece.isalpha() or piece.isdigit()):
                tokens.update(block_key(part) for part in _DIGITS_OR_NOT.findall(piece))
    if len(spelled) > 1:
        tokens.add(spelled)
    tokens.discard("")
    return tokens


def literal_text(text: str) -> str:
    """What `~text` block words are searched in: NFKC, casefolded, white space removed."""
    return "".join(unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold()).split())


def refuses(nickname: str, blocked: frozenset[str]) -> bool:
    """Whether a (normalised) nickname contains a word of the block list `blocked`, each word by its form."""
    return bool(blocked) and _compiled(blocked).refuses(nickname)


@dataclass(frozen=True, slots=True)
class _BlockRule:
    anywhere: frozenset[str]
    lengths: tuple[int, ...]  # the lengths of the `anywhere` words, ascending
    whole: frozenset[str]
    literal: tuple[str, ...]

    def refuses(self, nickname: str) -> bool:
        key = block_key(nickname)
        if self.whole and not self.whole.isdisjoint(block_tokens(nickname)):
            return True
        end = len(key)
        for start in range(end - self.lengths[0] + 1 if self.lengths else 0):
            for length in self.lengths:
                if start + length > end:
                    break
                if key[start : start + length] in self.anywhere:
                    return True
        if self.literal:
            text = literal_text(nickname)
            # Every literal word has a character that is no letter or digit: a name of letters and digits has none.
            return text != key and any(word in text for word in self.literal)
        return False


@functools.lru_cache(maxsize=8)  # one list per process in practice; frozensets cache their hash, so a hit is O(1)
def _compiled(blocked: frozenset[str]) -> _BlockRule:
    anywhere = frozenset(word for word in blocked if word and word[0] not in (WHOLE, LITERAL))
    return _BlockRule(
        anywhere=anywhere,
        lengths=tuple(sorted({len(word) for word in anywhere})),
        whole=frozenset(word[1:] for word in blocked if word.startswith(WHOLE) and len(word) > 1),
        literal=tuple(sorted(word[1:] for word in blocked if word.startswith(LITERAL) and len(word) > 1)),
    )


# --- the default English list --------------------------------------------------------------------------------------


def english_block_words(entries: Iterable[str]) -> frozenset[str]:
    """A word list's entries as block words, by the length rule above.

    An entry spelled with symbols (`$hit`, `s&m`, 🖕) becomes `~entry`; any other is reduced to its block key (its
    words run together: `big tits` → `bigtits`) and becomes `=key` below `ANYWHERE_MIN` characters, `key` from
    there on, and is dropped below `ENGLISH_MIN`.
    """
    words: set[str] = set()
    for entry in entries:
        if any(char not in _SEPARATORS and unicodedata.category(char)[0] not in "LN" for char in entry.strip()):
            text = literal_text(entry)
            if text:
                words.add(LITERAL + text)
            continue
        key = block_key(entry)
        if len(key) >= ANYWHERE_MIN:
            words.add(key)
        elif len(key) >= ENGLISH_MIN:
            words.add(WHOLE + key)
    return frozenset(words)


def glin_english_entries() -> list[str]:
    """The entries of glin-profanity's English dictionary, read from the installed package's data file.

    The file is read without importing the package, whose filter engine (40 modules) this server does not use.
    """
    spec = importlib.util.find_spec("glin_profanity")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nickname filter needs the glin-profanity package (pip install glin-profanity)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "dictionaries" / "english.json"
    entries = json.loads(path.read_text(encoding="utf-8"))["words"]
    if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
        raise RuntimeError(f"{path} is not a list of words")
    return entries


# The classroom's own additions: the package's list is of adult profanity, and what a class of ten-year-olds types
# on the projector is toilet words. Three, whole words only (3–7 letters): `PooPooHead69` is refused, `Pooh` is not.
CLASSROOM_WORDS = ("poo", "poop", "poopoo")


@functools.cache  # read once per process: a join never touches the file
def english_words() -> frozenset[str]:
    """The default English block list (`nickname_filter`), as block words: the package's and the classroom's."""
    return english_block_words([*glin_english_entries(), *CLASSROOM_WORDS])
