"""The default English nickname filter and the block-word forms (rooms/game/nickname_filter.py).

Rude names are refused however they are dressed up; ordinary names (tests/unit/ordinary_names.txt: US Census first
names and surnames chosen because they contain a short listed word) and ordinary nickname words are not; the
operator's file adds to the default; with the filter off only the file counts. The price of a word list — names that
are a listed word — is written down here too, so that changing it is a decision.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from quizroom.rooms.game.errors import BadNickname
from quizroom.rooms.game.friendly_names import ADJECTIVES, ANIMALS
from quizroom.rooms.game.nickname_filter import (
    ANYWHERE_MIN,
    ENGLISH_MIN,
    LITERAL,
    WHOLE,
    block_tokens,
    english_block_words,
    english_words,
    glin_english_entries,
    refuses,
)
from quizroom.rooms.game.nicknames import load_blocklist, normalise_nickname, parse_blocklist

ORDINARY_NAMES = [
    line.strip()
    for line in (Path(__file__).parent / "ordinary_names.txt").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
]
DEFAULT = load_blocklist("", english=True)  # what a server with default settings uses

RUDE = [
    "ShitHead",
    "shithead",
    "SHITHEAD",
    "Shit Head",
    "SHITHead",
    "Sh.i t-Head",  # the block key is `shithead`
    "ＳｈｉｔＨｅａｄ",  # fullwidth: NFKC makes it ShitHead
    "Ｓ Ｈ Ｉ Ｔ",
    "S.H.I.T",  # spelled out
    "shit69",
    "69Shit",
    "SH1T",  # the list's own leet spelling
    "Sh1tHead",
    "BullShit",
    "Dumb Ass",
    "F U C K",
    "$hit",  # spelled with symbols: matched as written
    "a$$hole",
    "Ann 🖕",
    "motherfucker",
    "Big Fat Bitch",
    "Coon",
]
ORDINARY_HARD_CASES = [  # real names and words that contain a short listed word, from around the world
    "Harshita",  # shit
    "Ishita",
    "Akshita",
    "Kinoshita",
    "Anusha",  # anus
    "Analía",  # anal
    "Ana L",  # the block key `anal` is not a token
    "Jerotich",  # erotic
    "Cherotich",
    "Yasemen",  # semen
    "Dildora",
    "Titilayo",  # tit
    "Assunta",  # ass
    "Cassandra",
    "Dickens",  # dick
    "Scunthorpe",  # cunt
    "Penistone",  # penis
    "Sussex",  # sex
    "Hancock",  # cock
    "Cummings",  # cumming
    "Grape",  # rape
    "Therapist",  # rapist
    "Montenegro",
    "Cocktail Kid",
    "xXNinjaXx",  # `xx` and `bs` are initials and decoration, left out
    "Xx_Sniper_xX",
    "BS Smith",
    "Pro Gamer 99",
    "Captain Awesome",
    "Mr Cool",
    "Cookie Monster",
]


def refused(name: str, blocked: frozenset[str] = DEFAULT) -> bool:
    """Whether the block list refuses `name` (any other refusal fails the test: the name itself is wrong)."""
    try:
        normalise_nickname(name, blocked)
    except BadNickname as refusal:
        assert str(refusal) == "nickname: is not allowed here", (name, str(refusal))
        return True
    return False


@pytest.mark.parametrize("name", RUDE)
def test_rude_names_are_refused_however_they_are_dressed_up(name: str) -> None:
    assert refused(name)


@pytest.mark.parametrize("name", ORDINARY_HARD_CASES)
def test_names_holding_a_short_listed_word_inside_are_not_refused(name: str) -> None:
    assert not refused(name)


def test_a_few_hundred_ordinary_names_from_the_census_are_not_refused() -> None:
    assert len(ORDINARY_NAMES) >= 400
    assert [name for name in ORDINARY_NAMES if refused(name)] == []
    assert [f"{name} K" for name in ORDINARY_NAMES if refused(f"{name} K")] == []  # a first name and an initial


def test_every_friendly_name_word_passes() -> None:
    assert [word for word in ADJECTIVES + ANIMALS if refused(word)] == []


def test_the_price_of_a_word_list_is_names_that_are_a_listed_word() -> None:
    # Documented in docs/protocol.md (Block list): refused alone and beside other words; "Richard" is fine.
    for name in ["Dick", "Dick V", "Lolita", "Kike", "Ali Butt", "Poon", "Hooker"]:
        assert refused(name), name
    for phrase in ["Jelly Donut", "Big Black Bear", "Hardcore Gamer"]:  # innocent-looking phrases the list holds
        assert refused(phrase), phrase
    assert not refused("Richard")


def test_the_classrooms_toilet_words_are_refused_and_the_operator_can_add_more(tmp_path: Path) -> None:
    # glin-profanity lists `poop chute`, not `poo`: the three classroom words are ours (CLASSROOM_WORDS).
    assert refused("PooPooHead69") and refused("poop") and refused("Poo Poo")
    assert not refused("Pooh Bear") and not refused("Poole") and not refused("Spoon")
    words = tmp_path / "blocked.txt"
    words.write_text("# ours\nstinky\n", encoding="utf-8")
    both = load_blocklist(str(words), english=True)
    assert refused("StinkyHead", both) and refused("ShitHead", both)  # the file adds to the default
    only_file = load_blocklist(str(words), english=False)
    assert refused("StinkyHead", only_file) and not refused("ShitHead", only_file)


def test_with_the_filter_off_no_default_word_is_refused() -> None:
    off = load_blocklist("", english=False)
    assert off == frozenset()
    assert [name for name in RUDE if refused(name, off)] == []
    assert normalise_nickname("ShitHead", off) == ("ShitHead", "shithead")


def test_operator_words_still_match_anywhere_in_the_block_key() -> None:
    blocked = parse_blocklist(["Bad Word", "ＳＮＡＲＫ"])
    assert blocked == {"badword", "snark"}
    for name in ["B.a d-Word", "ＢＡＤＷＯＲＤ", "xxbadwordxx", "Snarky"]:
        assert refused(name, blocked), name
    assert not refused("Snorkel", blocked)


def test_block_word_forms_match_by_their_prefix() -> None:
    blocked = frozenset({"longword", WHOLE + "ann", LITERAL + "a$"})
    assert refused("xlongwordx", blocked)  # anywhere
    assert refused("Ann", blocked) and refused("Hi Ann", blocked) and refused("AnnBob", blocked)  # whole tokens
    assert not refused("Anna", blocked) and not refused("Joanne", blocked)
    assert refused("Ba$ic", blocked) and not refused("Basic", blocked)  # as written


def test_tokens_cut_at_case_and_digits_and_join_spelled_letters() -> None:
    assert block_tokens("ShitHead") == {"shit", "head"}
    assert block_tokens("SHITHead") == {"shit", "head"}
    assert block_tokens("PooPooHead69") == {"poo", "head69", "head", "69"}
    assert block_tokens("S.H.I.T") == {"shit"}
    assert block_tokens("Ana L") == {"ana"}  # a lone letter spells nothing
    assert block_tokens("McDonald") == {"mc", "donald"}
    assert block_tokens("Дмитрий Ёж") == {"дмитрий", "ёж"}
    assert block_tokens("Yuki 雪") == {"yuki"}  # a lone character of any script spells nothing
    assert block_tokens("") == set()


def test_the_english_list_is_sorted_by_the_length_rule() -> None:
    words = english_block_words(["shithead", "Shit", "b!tch", "bs", "big tits", "🖕", "  "])
    assert words == {"shithead", WHOLE + "shit", LITERAL + "b!tch", WHOLE + "bigtits", LITERAL + "🖕"}
    default = english_words()
    assert len(default) > 300  # glin-profanity 4.1 has 416 English entries
    for word in default:
        if word.startswith(WHOLE):
            assert ENGLISH_MIN <= len(word) - 1 < ANYWHERE_MIN, word
        elif not word.startswith(LITERAL):
            assert len(word) >= ANYWHERE_MIN and word.isalnum(), word
    assert len(glin_english_entries()) >= len(default)


def test_the_list_is_compiled_once_and_a_join_stays_cheap() -> None:
    names = [f"{name} {name[0]}." for name in ORDINARY_NAMES] * 10
    assert refuses("ShitHead", DEFAULT)  # compiled now
    for blocked in (frozenset(), DEFAULT):
        normalise_nickname("warm up", blocked)
    start = time.perf_counter()
    for name in names:
        normalise_nickname(name, frozenset())
    bare = time.perf_counter() - start
    start = time.perf_counter()
    for name in names:
        normalise_nickname(name, DEFAULT)
    filtered = time.perf_counter() - start
    # Measured at ~1.9 µs a name bare and ~5 µs with the list; a scan of the list per join would be ~11 µs.
    assert filtered < bare * 6 + 0.05, (bare, filtered)
