"""Friendly nicknames: two words such as "Brave Otter", for a player the room names instead of the player.

Pure: the caller passes the random source and says which names are taken (the room backs `is_taken` with its
look-alike table, `TakenNames.clashes`, and may refuse more there, e.g. its block list). The words are a list of our
own rather than a package's (README, "Dependency notes"): they are shown to children, on a class's screen, so each
one was chosen for that — kind adjectives about character or energy, never about looks, size, colour or mind, and
animals with no second meaning in English slang and none of the apes and monkeys, whose pairing with the wrong word
is an old insult. Every pairing passes the default nickname filter (tests/unit/test_friendly_names.py checks all).
"""

from __future__ import annotations

import random
from collections.abc import Callable

ADJECTIVES: tuple[str, ...] = (
    "Active", "Agile", "Amazing", "Artful", "Astute", "Atomic", "Awesome", "Bold", "Bouncy", "Brave",
    "Breezy", "Bright", "Brilliant", "Bubbly", "Calm", "Careful", "Caring", "Charming", "Cheerful", "Chirpy",
    "Clever", "Cosmic", "Cozy", "Curious", "Daring", "Dazzling", "Dynamic", "Eager", "Electric", "Epic",
    "Fabulous", "Fearless", "Friendly", "Gallant", "Gentle", "Giggly", "Glad", "Gleaming", "Glorious", "Glowing",
    "Graceful", "Grand", "Groovy", "Happy", "Hardy", "Helpful", "Heroic", "Honest", "Hopeful", "Humble",
    "Inventive", "Jaunty", "Jazzy", "Jolly", "Jovial", "Joyful", "Keen", "Kind", "Legendary", "Lively",
    "Loyal", "Lucky", "Magical", "Majestic", "Mellow", "Merry", "Mighty", "Modest", "Mystic", "Nifty",
    "Nimble", "Noble", "Patient", "Peaceful", "Peppy", "Playful", "Plucky", "Polite", "Precise", "Proud",
    "Quick", "Quiet", "Quirky", "Radiant", "Rapid", "Ready", "Royal", "Savvy", "Serene", "Sharp",
    "Shiny", "Sincere", "Sleek", "Smart", "Smiley", "Snappy", "Snazzy", "Sparkly", "Speedy", "Splendid",
    "Sporty", "Spry", "Steady", "Stellar", "Sturdy", "Sublime", "Sunny", "Super", "Superb", "Swift",
    "Tenacious", "Thankful", "Tranquil", "Trusty", "Turbo", "Upbeat", "Valiant", "Vibrant", "Vigilant", "Vivid",
    "Warm", "Whimsical", "Wise", "Witty", "Wondrous", "Zany", "Zesty", "Zippy",
)  # fmt: skip

ANIMALS: tuple[str, ...] = (
    "Albatross", "Alpaca", "Antelope", "Armadillo", "Axolotl", "Badger", "Beagle", "Bear", "Beetle", "Bison",
    "Bumblebee", "Butterfly", "Capybara", "Chameleon", "Cheetah", "Chipmunk", "Condor", "Corgi", "Coyote", "Crab",
    "Crane", "Cricket", "Dingo", "Dolphin", "Dragon", "Dragonfly", "Eagle", "Echidna", "Eland", "Elk",
    "Emu", "Falcon", "Ferret", "Finch", "Firefly", "Flamingo", "Fox", "Frog", "Gazelle", "Gecko",
    "Gerbil", "Giraffe", "Goldfish", "Griffin", "Hamster", "Hare", "Hawk", "Hedgehog", "Heron", "Ibex",
    "Iguana", "Jaguar", "Jellyfish", "Kangaroo", "Kestrel", "Kiwi", "Koala", "Kraken", "Ladybug", "Leopard",
    "Lion", "Llama", "Lobster", "Lynx", "Macaw", "Magpie", "Mantis", "Marmot", "Meerkat", "Mongoose",
    "Moose", "Narwhal", "Newt", "Ocelot", "Octopus", "Okapi", "Orca", "Osprey", "Ostrich", "Otter",
    "Owl", "Panda", "Panther", "Parrot", "Pegasus", "Pelican", "Penguin", "Phoenix", "Platypus", "Pony",
    "Puffin", "Puma", "Quokka", "Rabbit", "Raven", "Reindeer", "Rhino", "Robin", "Salmon", "Seahorse",
    "Seal", "Sparrow", "Squid", "Squirrel", "Starfish", "Stingray", "Swan", "Tapir", "Tiger", "Tortoise",
    "Toucan", "Turtle", "Unicorn", "Wallaby", "Wolf", "Wolverine", "Wombat", "Wren", "Yak", "Yeti",
    "Zebra",
)  # fmt: skip

TRIES = 20  # draws of a fresh two-word name before numbering: a full 10,000-player room still finds one in 20
NUMBER_DIGITS = (2, 3, 4)  # then "Brave Otter 12", "Brave Otter 123", "Brave Otter 1234"; words of ≤ 9 letters fit 24


def friendly_name(rng: random.Random, is_taken: Callable[[str], bool], tries: int = TRIES) -> str:
    """A two-word name ("Brave Otter", title case, at most 24 characters) that `is_taken` says is free.

    Draws `tries` adjective–animal pairs; while each is taken, goes on with a number after a pair ("Brave Otter 12",
    then three and four digits), `tries` draws for each width. So the callback is asked at most `4 × tries` times,
    whatever it answers: with the 15,488 pairs here and 1.4 million numbered names of two digits, a room of 10,000
    players never comes near the end. The same `rng` state gives the same names. Raises `LookupError` only when
    every draw was taken, which means `is_taken` refuses (nearly) everything.
    """
    for _ in range(tries):
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(ANIMALS)}"
        if not is_taken(name):
            return name
    for digits in NUMBER_DIGITS:
        for _ in range(tries):
            number = rng.randrange(10 ** (digits - 1), 10**digits)
            name = f"{rng.choice(ADJECTIVES)} {rng.choice(ANIMALS)} {number}"
            if not is_taken(name):
                return name
    raise LookupError(f"no friendly name was free in {tries * (1 + len(NUMBER_DIGITS))} draws")
