"""Friendly names (rooms/game/friendly_names.py): two kind words, unique in a room, bounded work, reproducible."""

from __future__ import annotations

import random

import pytest
import regex

from quizroom.rooms.game.friendly_names import ADJECTIVES, ANIMALS, NUMBER_DIGITS, TRIES, friendly_name
from quizroom.rooms.game.nicknames import NICKNAME_MAX, TakenNames, load_blocklist, normalise_nickname

SHAPE = regex.compile(r"[A-Z][a-z]+ [A-Z][a-z]+(?: [1-9][0-9]{1,3})?")
DEFAULT = load_blocklist("", english=True)  # the default nickname filter of a server


def test_the_word_lists_have_no_repeats_and_title_case_words() -> None:
    assert len(set(ADJECTIVES)) == len(ADJECTIVES) >= 100
    assert len(set(ANIMALS)) == len(ANIMALS) >= 100
    assert all(word.isalpha() and word.isascii() and word.istitle() for word in ADJECTIVES + ANIMALS)


def test_every_name_fits_24_characters_even_with_the_longest_number() -> None:
    longest = max(map(len, ADJECTIVES)) + 1 + max(map(len, ANIMALS)) + 1 + max(NUMBER_DIGITS)
    assert longest <= NICKNAME_MAX


def test_every_pairing_passes_the_default_nickname_filter_unchanged() -> None:
    for adjective in ADJECTIVES:
        for animal in ANIMALS:
            name = f"{adjective} {animal}"
            assert normalise_nickname(name, DEFAULT) == (name, name.casefold())
            numbered = f"{name} {10 ** max(NUMBER_DIGITS) - 1}"
            assert normalise_nickname(numbered, DEFAULT)[0] == numbered


def test_ten_thousand_draws_against_the_rooms_lookalike_table_are_all_different() -> None:
    rng = random.Random(16)
    taken = TakenNames()
    names = []
    for _ in range(10_000):
        name = friendly_name(rng, taken.clashes)
        taken.add(name)
        names.append(name)
    assert len({name.casefold() for name in names}) == 10_000
    assert all(SHAPE.fullmatch(name) and len(name) <= NICKNAME_MAX for name in names)
    numbered = sum(1 for name in names if name[-1].isdigit())
    assert numbered < 100, numbered  # 15,488 pairs: 20 draws nearly always find a free one, even at 10,000


def test_a_seeded_rng_gives_the_same_names() -> None:
    def draw(seed: int) -> list[str]:
        rng, taken = random.Random(seed), set[str]()
        for _ in range(50):
            taken.add(friendly_name(rng, taken.__contains__))
        return sorted(taken)

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_when_every_pair_is_taken_a_number_is_added() -> None:
    name = friendly_name(random.Random(1), lambda name: not name[-1].isdigit())
    assert regex.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+ [1-9][0-9]", name), name


def test_a_callback_that_refuses_everything_is_asked_a_bounded_number_of_times() -> None:
    asked: list[str] = []

    def everything_taken(name: str) -> bool:
        asked.append(name)
        return True

    with pytest.raises(LookupError):
        friendly_name(random.Random(2), everything_taken)
    assert len(asked) == TRIES * (1 + len(NUMBER_DIGITS))
    assert {len(name.rsplit(" ", 1)[-1]) for name in asked if name[-1].isdigit()} == set(NUMBER_DIGITS)
