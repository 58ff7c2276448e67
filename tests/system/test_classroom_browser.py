"""The classroom in real Chromium: the projector, a host who comes back, kicks that stick, reloads that keep the
screen, and the game's rhythm (get ready, reveal, scoreboard, podium built 3rd → 2nd → 1st).

Sizes are measured on the page (getBoundingClientRect, computed styles), never judged from screenshots; the
screenshots are saved for docs/screenshots (`QUIZROOM_SCREENSHOTS=docs/screenshots`). Skipped only when Debian's
Chromium is missing outside CI, like tests/system/test_browser.py, whose helpers this module shares.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from quizroom.clients.local_server import LocalServer
from tests.system.test_browser import PHONE, Screens, chromium, new_page, on_question, on_screen, pick

LONG_TEXT = ("Which of these statements about the water cycle, which moves water between the oceans, the air and "
             "the land, is true? ") * 5  # fmt: skip
SIX = ["Evaporation needs heat", "Clouds are water vapour", "Rain is salty", "Ice never evaporates",
       "Rivers flow uphill", "Snow is not water"]  # fmt: skip
QUIZ: dict[str, Any] = {
    "title": "Classroom quiz",
    "questions": [
        {"text": "Which of these is true?", "choices": SIX, "correct": [0], "time_limit_ms": 120000},
        {"text": LONG_TEXT[:500], "choices": ["True", "False", "Both", "Neither"], "correct": [0, 2],
         "time_limit_ms": 120000},
        {"text": "Which planet is closest to the Sun?", "choices": ["Venus", "Mercury"], "correct": [1],
         "time_limit_ms": 120000},
    ],
}  # fmt: skip
PROJECTORS = [(1920, 1080), (1280, 720), (1366, 768), (3840, 2160)]
# What can give the answer away on the projector: a marked tile, a tick, a label saying so.
ANSWER_SHOWN = """() => {
  const screen = document.getElementById('screen-question');
  const marks = screen.querySelectorAll('.correct, [data-correct], .mark');
  const labels = [...screen.querySelectorAll('[aria-label]')]
    .filter(e => /correct/i.test(e.getAttribute('aria-label')));
  return marks.length + labels.length + (screen.innerText.includes('✓') ? 1 : 0);
}"""
SIZES = """() => {
  const px = (el) => parseFloat(getComputedStyle(el).fontSize);
  const q = document.getElementById('hq-text');
  const labels = [...document.querySelectorAll('#hq-choices .choice .label')];
  const timer = document.getElementById('hq-timer');
  const tiles = [...document.querySelectorAll('#hq-choices .choice')].map(t => t.getBoundingClientRect());
  return {
    height: window.innerHeight, width: window.innerWidth,
    question: px(q), choices: Math.min(...labels.map(px)),
    timer: timer.getBoundingClientRect().height, timerText: px(timer),
    lowest: Math.max(...tiles.map(r => r.bottom)), rightmost: Math.max(...tiles.map(r => r.right)),
  };
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    # A minute of an empty host seat is a long time in a test: a second does the same.
    flags = ("--auto-advance-after-s", "1")
    with LocalServer.start(tmp_path_factory.mktemp("classroom-server"), extra_args=flags) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def create_room(host: Page, base: str, quiz: dict[str, Any], *, intro_s: int = 1, auto: bool = False) -> str:
    host.goto(f"{base}/host")
    on_screen(host, "create")
    host.click("#tab-json")
    host.fill("#quiz-json", json.dumps(quiz))
    if intro_s:
        host.fill("#o-intro-s", str(intro_s))
    else:
        host.uncheck("#o-intro")  # no pause where a test does not look at it
    if auto:
        host.check("#o-auto")
    host.click("#create")
    on_screen(host, "lobby")
    return host.inner_text("#l-pin").replace(" ", "")


def join(page: Page, base: str, pin: str, nickname: str) -> None:
    page.goto(f"{base}/?pin={pin}")
    on_screen(page, "join")
    page.fill("#nickname", nickname)
    page.click("#join-button")


def test_the_projector_never_shows_the_answer_and_is_read_from_the_back(
    server: LocalServer, browser: Browser, tmp_path: Path
) -> None:
    shots = Screens(tmp_path)
    errors: list[str] = []
    base = server.base_url
    host_context, host = new_page(browser, errors, "host", viewport={"width": 1920, "height": 1080})
    pin = create_room(host, base, QUIZ)
    _, ada = new_page(browser, errors, "ada", **PHONE)
    _, bob = new_page(browser, errors, "bob", viewport={"width": 360, "height": 640}, is_mobile=True)
    join(ada, base, pin, "Ada")
    join(bob, base, pin, "Bob")
    on_screen(ada, "lobby")
    on_screen(bob, "lobby")
    expect(host.locator("#l-players li")).to_have_count(2)
    expect(host.locator("#l-qr")).to_be_visible()
    for width, height in PROJECTORS[:2]:
        host.set_viewport_size({"width": width, "height": height})
        pin_px = host.evaluate("parseFloat(getComputedStyle(document.getElementById('l-pin')).fontSize)")
        qr = host.evaluate("document.getElementById('l-qr').getBoundingClientRect().height")
        assert pin_px >= 0.12 * height and qr >= 0.25 * height, (width, pin_px, qr)
    host.set_viewport_size({"width": 1920, "height": 1080})
    shots.shoot(host, "host-lobby")

    # The "get ready" pause on both screens, then the question; the projector marks nothing as correct.
    host.click("#l-start")
    on_screen(host, "ready")
    on_screen(ada, "ready")
    expect(host.locator("#hg-text")).to_have_text("Which of these is true?")
    shots.shoot(ada, "player-get-ready")
    on_screen(host, "question")
    on_question(ada, 0)
    presenter = host_context.new_page()  # the teacher's second window, same browser
    presenter.on("pageerror", lambda exc: errors.append(f"notes: {exc}"))
    presenter.goto(f"{base}/host?notes={pin}")
    on_screen(presenter, "question")
    expect(presenter.locator("#hq-choices .choice.correct")).to_have_count(1)
    for width, height in PROJECTORS:
        host.set_viewport_size({"width": width, "height": height})
        assert host.evaluate(ANSWER_SHOWN) == 0, "the projector gave the answer away"
        sizes = host.evaluate(SIZES)
        assert sizes["question"] >= 0.04 * height, sizes
        assert sizes["choices"] >= 0.03 * height, sizes
        assert sizes["timer"] >= 0.10 * height and sizes["timerText"] >= 0.05 * height, sizes
        assert sizes["lowest"] <= height and sizes["rightmost"] <= width, f"a choice is cut off: {sizes}"
    host.set_viewport_size({"width": 1920, "height": 1080})
    shots.shoot(host, "host-question")
    pick(ada, 0)
    pick(bob, 1)

    # The reveal marks the answer, with each choice's count; the scoreboard follows; no host page broke.
    on_screen(host, "reveal")
    expect(host.locator("#hr-bars .rbar")).to_have_count(6)
    expect(host.locator("#hr-bars .rbar.correct")).to_have_count(1)
    expect(host.locator("#hr-bars .rbar[data-choice='0'] .rbar-n")).to_have_text("1")
    shots.shoot(host, "host-reveal")
    host.click("#hr-next")
    on_screen(host, "scoreboard")
    expect(host.locator("#hs-board li")).to_have_count(2)
    host.click("#hs-next")

    # A 500-character question on a 360×640 phone: the text scrolls in its box, the answer tiles stay on screen.
    on_question(bob, 1)
    on_screen(host, "question")
    assert host.evaluate(ANSWER_SHOWN) == 0
    tiles = bob.evaluate(
        "[...document.querySelectorAll('#q-choices .choice')].map(t => t.getBoundingClientRect().bottom)"
    )
    assert len(tiles) == 4 and max(tiles) <= 640, tiles
    shots.shoot(bob, "player-long-question")
    presenter.close()
    assert errors == []


def test_a_host_who_closes_the_browser_comes_back_and_an_auto_advance_game_ends_without_them(
    server: LocalServer, browser: Browser, tmp_path: Path
) -> None:
    shots = Screens(tmp_path)
    errors: list[str] = []
    base = server.base_url
    context, host = new_page(browser, errors, "host", viewport={"width": 1280, "height": 720})
    pin = create_room(host, base, QUIZ, intro_s=0, auto=True)
    _, ada = new_page(browser, errors, "ada", **PHONE)
    _, bob = new_page(browser, errors, "bob", **PHONE)
    join(ada, base, pin, "Ada")
    join(bob, base, pin, "Bob")
    on_screen(bob, "lobby")
    host.click("#l-start")
    on_question(ada, 0)
    pick(ada, 0)
    pick(bob, 2)
    on_screen(host, "reveal")
    # A player reloads at the reveal: verdict, points and the leaderboard come back.
    ada.reload()
    on_screen(ada, "result")
    expect(ada.locator("#r-title")).to_have_text("Correct!")
    expect(ada.locator("#r-board li")).to_have_count(2)
    expect(ada.locator("#r-behind")).to_have_text("You're in the lead!")
    expect(bob.locator("#r-behind")).to_contain_text("behind Ada")
    shots.shoot(bob, "player-result")
    host.click("#hr-next")
    host.click("#hs-next")
    on_question(ada, 1)
    on_screen(host, "question")

    # Mid-question the host's browser closes (its storage kept, as a real browser keeps it) and opens /host again.
    kept = context.storage_state()
    context.close()
    context = browser.new_context(storage_state=kept, viewport={"width": 1280, "height": 720})
    host = context.new_page()
    host.on("pageerror", lambda exc: errors.append(f"host again: {exc}"))
    host.goto(f"{base}/host")
    on_screen(host, "create")
    expect(host.locator(f"#mine li[data-pin='{pin}']")).to_be_visible()
    shots.shoot(host, "host-reopen")
    host.click(f"#mine li[data-pin='{pin}'] button:has-text('Reopen')")
    on_screen(host, "question")
    expect(host.locator("#hq-count")).to_have_text("Question 2 of 3")
    # A player picks two answers of the multi-answer question and reloads: the ticks stay.
    ada.click("#q-choices [data-choice='0']")
    ada.click("#q-choices [data-choice='2']")
    pick(ada, multi=True)
    expect(host.locator("#hq-answers-n")).to_have_text("1")
    ada.reload()
    on_question(ada, 1)
    expect(ada.locator("#q-locked")).to_be_visible()
    expect(ada.locator("#q-locked-choice")).to_have_text("You picked: True, Both")
    # Now the host leaves for good: with auto_advance the room goes on after each reveal, to the podium.
    context.close()
    pick(bob, 1, multi=True)
    # Both see their result, then (after the empty host seat's second and the pause) the last question.
    on_question(ada, 2)
    on_question(bob, 2)
    pick(ada, 1)
    pick(bob, 0)
    for page in (ada, bob):
        on_screen(page, "finished")
        expect(page.locator("#f-podium .place")).to_have_count(2)
    expect(ada.locator("#f-me")).to_contain_text("You finished 1st")
    assert errors == []


def test_a_kicked_player_stays_out_and_leaves_the_counts(server: LocalServer, browser: Browser, tmp_path: Path) -> None:
    shots = Screens(tmp_path)
    errors: list[str] = []
    base = server.base_url
    _, host = new_page(browser, errors, "host", viewport={"width": 1920, "height": 1080})
    host.on("dialog", lambda dialog: dialog.accept())
    pin = create_room(host, base, QUIZ, intro_s=0)
    phones = {name: new_page(browser, errors, name, **PHONE) for name in ("Ada", "Zed", "Cy", "Dee")}
    for name, (_, page) in phones.items():
        join(page, base, pin, name)
        on_screen(page, "lobby")
    ada, zed, cy, dee = (phones[name][1] for name in ("Ada", "Zed", "Cy", "Dee"))
    expect(host.locator("#l-players li")).to_have_count(4)
    assert host.locator("#l-players button[aria-label^='Remove']").count() == 0, "no kick control beside a name"
    host.click("#l-start")
    for page in (ada, zed, cy, dee):
        on_question(page, 0)
    pick(zed, 3)
    expect(host.locator("#hq-answered")).to_have_text("1 of 4 answered")

    # Mid-question: the host opens the players drawer and removes Zed; Zed's answer leaves the count.
    host.click("#h-players")
    host.fill("#pp-filter", "Ze")
    expect(host.locator("#pp-list li")).to_have_count(1)
    shots.shoot(host, "host-players")
    host.click("#pp-list button[aria-label='Remove Zed']")
    on_screen(zed, "ended")
    expect(zed.locator("#e-title")).to_have_text("Removed from the game")
    expect(host.locator("#hq-answered")).to_have_text("0 of 3 answered")
    host.click("#pp-close")
    zed.reload()
    on_screen(zed, "ended")
    expect(zed.locator("#e-title")).to_have_text("Removed from the game")
    shots.shoot(zed, "player-removed")
    zed.click("#e-join")  # the same device under a new name: still out
    on_screen(zed, "join")
    zed.fill("#pin", pin)
    zed.fill("#nickname", "Zed again")
    zed.click("#join-button")
    on_screen(zed, "ended")
    # The same name from another device: refused with words; a new name from there: in.
    _, other = new_page(browser, errors, "other", **PHONE)
    join(other, base, pin, "ZED")
    expect(other.locator("#join-error")).to_contain_text("removed a player of that name")
    other.fill("#nickname", "Eve")
    other.click("#join-button")
    on_screen(other, "question")
    pick(ada, 0)
    pick(cy, 2)  # wrong, like Eve below: the podium has at least two places
    pick(dee, 0)
    # Eve counts too (she joined late): the question closes at everyone's answer, hers included.
    pick(other, 1)
    on_screen(host, "reveal")
    expect(host.locator("#hr-summary")).to_have_text("4 of 4 players answered.")
    # The projector reloads at the reveal: the same bars come back from the welcome.
    host.reload()
    on_screen(host, "reveal")
    expect(host.locator("#hr-bars .rbar")).to_have_count(6)
    expect(host.locator("#hr-bars .rbar[data-choice='0'] .rbar-n")).to_have_text("2")
    host.click("#hr-next")
    expect(host.locator("#hs-board li")).to_have_count(4)
    assert "Zed" not in host.inner_text("#hs-board")
    host.click("#hs-next")
    for page in (ada, cy, dee, other):
        on_question(page, 1)
    host.click("#h-end")
    on_screen(host, "finished")
    # Each place rises later than the one below it (ties share a place): 3rd, then 2nd, then 1st.
    places = host.evaluate(
        "[...document.querySelectorAll('#hf-podium .place')].map(p => "
        "[Number(p.className.match(/p(\\d)/)[1]), parseFloat(getComputedStyle(p).animationDelay)])"
    )
    assert len({rank for rank, _ in places}) >= 2, places  # Cy answered wrong: at least two places
    assert all(d_low < d_high for r_low, d_low in places for r_high, d_high in places if r_low > r_high), places
    host.wait_for_function("document.getAnimations().every(a => a.playState === 'finished')")  # 1st is up
    assert host.evaluate("getComputedStyle(document.querySelector('#hf-podium .p1')).opacity") == "1"
    shots.shoot(host, "host-podium")
    assert errors == []


def test_editor_and_join_errors_say_what_to_do(server: LocalServer, browser: Browser, tmp_path: Path) -> None:
    errors: list[str] = []
    base = server.base_url
    _, host = new_page(browser, errors, "host", viewport={"width": 1280, "height": 800})
    host.goto(f"{base}/host")
    on_screen(host, "create")
    host.click("#f-add")
    added = host.locator("#f-questions .qedit").last
    added.locator(".q-text").fill("A question\nover two lines")  # the question field takes several lines
    added.locator(".q-choice").nth(0).fill("Yes")
    added.locator(".q-choice").nth(1).fill("No")
    host.click("#create")
    expect(added.locator(".q-error")).to_have_text("Question 4: tick at least one correct answer.")
    expect(host.locator("#f-quiz-title-error")).to_have_text("")
    assert host.evaluate("document.activeElement.classList.contains('q-text')"), "the field in question has focus"
    added.locator(".q-correct").nth(1).check()
    host.click("#create")
    on_screen(host, "lobby")
    pin = host.inner_text("#l-pin").replace(" ", "")

    _, phone = new_page(browser, errors, "phone", **PHONE)
    join(phone, base, pin, "A" * 30)  # not cut to 24 in silence: refused with the limit
    expect(phone.locator("#join-error")).to_contain_text("the limit is 24")
    phone.fill("#nickname", "\U0001f468\u200d\U0001f469\u200d\U0001f467 Fam")  # a family emoji: one picture
    phone.click("#join-button")
    on_screen(phone, "lobby")
    expect(phone.locator("#me-name")).to_have_text("\U0001f468\u200d\U0001f469\u200d\U0001f467 Fam")
    assert errors == []
