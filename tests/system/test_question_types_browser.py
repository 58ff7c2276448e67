"""The question types in real Chromium: a quiz of a typed answer, a slider, a puzzle and a poll written in the
host page's editor, played on a phone, revealed on the projector with each type's tally (docs/protocol.md,
*Question types*). Skipped only when Debian's Chromium is missing outside CI, like tests/system/test_browser.py,
whose helpers this module shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from quizroom.clients.local_server import LocalServer
from tests.system.test_browser import PHONE, Screens, chromium, join, new_page, on_question, on_screen, pick
from tests.system.test_classroom_browser import ANSWER_SHOWN

ITEMS = ["one", "two", "three"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path_factory.mktemp("types-server")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def write_quiz(host: Page) -> None:
    """Four questions written in the form: each type picked from its select, then its fields filled."""
    host.fill("#f-quiz-title", "Every kind of question")
    host.select_option("#q0-type", "type_answer")
    host.fill("#q0-text", "Capital of Italy?")
    host.fill("#q0-a0", "Rome")
    host.check("#f-questions [data-question='0'] .q-typo")
    host.select_option("#q1-type", "slider")
    host.fill("#q1-text", "Legs on a spider?")
    for field, value in (("min", "0"), ("max", "20"), ("step", "1"), ("value", "8"), ("tolerance", "2")):
        host.fill(f"#q1-{field}", value)
    host.select_option("#q2-type", "puzzle")
    host.fill("#q2-text", "Count up")
    for i, item in enumerate(ITEMS):
        host.fill(f"#q2-i{i}", item)
    host.click("#f-add")
    host.select_option("#q3-type", "poll")
    host.fill("#q3-text", "Red or blue?")
    host.fill("#q3-c0", "Red")
    host.fill("#q3-c1", "Blue")
    expect(host.locator("#q3-points")).to_have_count(0)  # a poll scores nothing: no points field


def submit(page: Page, locked: str) -> None:
    page.click("#q-submit")
    expect(page.locator("#q-locked")).to_be_visible()
    expect(page.locator("#q-locked-choice")).to_have_text(locked)


def next_question(host: Page) -> None:
    host.click("#hr-next")
    on_screen(host, "scoreboard")
    host.click("#hs-next")


def test_a_quiz_of_every_new_type_from_the_editor_to_the_reveal(
    server: LocalServer, browser: Browser, tmp_path: Path
) -> None:
    shots = Screens(tmp_path)
    errors: list[str] = []
    base = server.base_url
    _, host = new_page(browser, errors, "host", viewport={"width": 1280, "height": 720})
    host.goto(f"{base}/host")
    on_screen(host, "create")
    write_quiz(host)
    host.uncheck("#o-intro")
    host.click("#create")
    on_screen(host, "lobby")
    pin = host.inner_text("#l-pin").replace(" ", "")
    _, ada = new_page(browser, errors, "ada", **PHONE)
    _, bob = new_page(browser, errors, "bob", **PHONE)
    join(ada, base, pin, "Ada")
    join(bob, base, pin, "Bob")  # Bob stays silent: the host closes each question
    on_screen(ada, "lobby")
    on_screen(bob, "lobby")
    host.click("#l-start")

    # A typed answer: one typo forgiven; the projector says how to answer, never the answer.
    on_question(ada, 0)
    on_screen(host, "question")
    assert host.evaluate(ANSWER_SHOWN) == 0 and "Rome" not in host.inner_text("#screen-question")
    ada.fill("#q-typed", "  rone ")
    shots.shoot(ada, "player-type-answer")
    submit(ada, "You answered: rone")
    host.click("#hq-close")
    on_screen(ada, "result")
    expect(ada.locator("#r-title")).to_have_text("Correct!")
    on_screen(host, "reveal")
    expect(host.locator("#hr-bars .tally li")).to_have_count(1)
    expect(host.locator("#hr-bars .tally li.right")).to_contain_text("rone")
    expect(host.locator("#hr-bars .answer-line")).to_have_text("Answer: Rome")
    next_question(host)

    # A slider: 10 is within 8 ± 2.
    on_question(ada, 1)
    expect(ada.locator("#q-slider")).to_have_attribute("max", "20")
    ada.evaluate(
        "() => { const s = document.getElementById('q-slider'); s.value = '10';"
        " s.dispatchEvent(new Event('input', { bubbles: true })); }"
    )
    expect(ada.locator("#q-slider-value")).to_have_text("10")
    shots.shoot(ada, "player-slider")
    submit(ada, "You picked: 10")
    host.click("#hq-close")
    expect(ada.locator("#r-title")).to_have_text("Correct!")
    on_screen(host, "reveal")
    bins = host.locator("#hr-bars .bins > div")
    assert 1 <= bins.count() <= 20
    expect(host.locator("#hr-bars .bins > div.right").first).to_be_visible()
    shots.shoot(host, "host-reveal-slider")
    next_question(host)

    # A puzzle, shown shuffled: put the items in order with the arrow buttons.
    on_question(ada, 2)
    shown = ada.locator("#q-puzzle .label").all_inner_texts()
    assert sorted(shown) == sorted(ITEMS) and shown != ITEMS
    for place, item in enumerate(ITEMS):
        now = ada.locator("#q-puzzle .label").all_inner_texts().index(item)
        for _ in range(now - place):
            ada.click(f"#q-puzzle button[aria-label='Move {item} up']")
    assert ada.locator("#q-puzzle .label").all_inner_texts() == ITEMS
    shots.shoot(ada, "player-puzzle")
    submit(ada, "Your order: one → two → three")
    host.click("#hq-close")
    expect(ada.locator("#r-title")).to_have_text("Correct!")
    on_screen(host, "reveal")
    expect(host.locator("#hr-bars .answer-line")).to_have_text("1 of 1 got the order right")
    next_question(host)

    # A poll: counted, never right or wrong.
    on_question(ada, 3)
    pick(ada, 1)
    host.click("#hq-close")
    expect(ada.locator("#r-title")).to_have_text("Thanks for voting!")
    expect(ada.locator("#r-points")).to_be_hidden()
    on_screen(host, "reveal")
    expect(host.locator("#hr-bars .rbar")).to_have_count(2)
    expect(host.locator("#hr-bars .rbar.correct, #hr-bars .rbar.wrong")).to_have_count(0)
    expect(host.locator("#hr-bars .rbar[data-choice='1'] .rbar-n")).to_have_text("1")
    assert errors == []
