"""Pictures in real Chromium (docs/protocol.md, "Images"): a host attaches a question picture and picture answers in
the editor, plays the quiz on a phone viewport, and the phone shows the question, and starts its countdown, only
once its pictures are decoded, even when they are slow to arrive. Skipped only when Debian's Chromium is missing
outside CI, like tests/system/test_browser.py, whose helpers this module shares."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, FilePayload, Page, Route, expect

from quizroom.clients.local_server import LocalServer
from tests import imagefiles
from tests.system.test_browser import PHONE, Screens, chromium, join, new_page, on_screen, pick

DECODED = """sel => { const imgs = [...document.querySelectorAll(sel)];
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }"""

FIT = """() => ({
  picture: document.querySelector('#hq-image img').getBoundingClientRect().height,
  lowest: Math.max(...[...document.querySelectorAll('#hq-choices .choice, #hq-close')]
    .map(e => e.getBoundingClientRect().bottom)),
})"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path_factory.mktemp("images-server")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def attach(page: Page, selector: str, name: str, data: bytes, media: str) -> None:
    payload: FilePayload = {"name": name, "mimeType": media, "buffer": data}
    page.set_input_files(selector, files=[payload])


def form_quiz(page: Page) -> dict[str, Any]:
    """The quiz as the editor would send it (through its JSON tab, and back to the form)."""
    page.click("#tab-json")
    quiz: dict[str, Any] = json.loads(page.input_value("#quiz-json"))
    page.click("#tab-form")
    return quiz


class Held:
    """Image requests of one page held back until `release()`: a phone on a slow network."""

    def __init__(self, page: Page) -> None:
        self.routes: list[Route] = []
        self.released = False
        page.route("**/api/images/*", self.hold)

    def hold(self, route: Route) -> None:
        if self.released:
            route.continue_()
        else:
            self.routes.append(route)

    def release(self) -> None:
        self.released = True
        for route in self.routes:
            route.continue_()
        self.routes.clear()


def test_pictures_made_in_the_editor_are_shown_only_once_decoded(
    server: LocalServer, browser: Browser, tmp_path: Path
) -> None:
    shots = Screens(tmp_path)
    errors: list[str] = []
    base = server.base_url
    _, host = new_page(browser, errors, "host", viewport={"width": 1280, "height": 800})
    host.goto(f"{base}/host")
    on_screen(host, "create")

    # The editor: a picture for question 1, pictures for two of its answers; a refused file says why.
    attach(host, "#q0-c2-image", "notes.png", b"not a picture at all", "image/png")
    expect(
        host.locator("#f-questions .qedit").first.locator(".choice-row").nth(2).locator(".upload-status")
    ).to_contain_text("isn't a picture")
    attach(host, "#q0-image", "sun.jpg", imagefiles.encoded(imagefiles.drawing("sun"), "JPEG"), "image/jpeg")
    venus = imagefiles.encoded(imagefiles.drawing("venus", (240, 240)), "PNG")
    attach(host, "#q0-c0-image", "venus.png", venus, "image/png")
    mercury = imagefiles.encoded(imagefiles.drawing("mercury", (240, 240)), "WEBP")
    attach(host, "#q0-c1-image", "mercury.webp", mercury, "image/webp")
    attach(host, "#q1-image", "gas.gif", imagefiles.gif_animated(), "image/gif")
    # A large phone photo is made small in the browser before it is sent, and the server keeps 1600 px of it.
    with host.expect_request("**/api/images") as sent:
        attach(host, "#q2-image", "IMG_2024.JPG", imagefiles.noise_jpeg(2400, 1800), "image/jpeg")
    assert len(sent.value.post_data_buffer or b"") < 1_500_000
    third = host.locator("#f-questions .qedit").nth(2)
    expect(third.locator(".thumb:visible")).to_have_count(1)
    first = host.locator("#f-questions .qedit").first
    expect(first.locator(".thumb:visible")).to_have_count(3)
    host.wait_for_function(DECODED, arg="#f-questions .qedit:first-child .thumb:not([hidden])")
    second = host.locator("#f-questions .qedit").nth(1)
    expect(second.locator(".thumb:visible")).to_have_count(1)
    second.locator(".picture-remove:visible").click()
    expect(second.locator(".thumb:visible")).to_have_count(0)
    quiz = form_quiz(host)
    q0 = quiz["questions"][0]
    assert len(q0["image"]) == 64 and q0["choices"] == ["Venus", "Mercury", "Mars", "Earth"]
    assert q0["choice_images"][2:] == [None, None] and all(q0["choice_images"][:2])
    assert "image" not in quiz["questions"][1], "the removed picture is gone"
    photo = host.request.get(f"{base}/api/images/{quiz['questions'][2]['image']}")
    assert photo.ok and max(Image.open(io.BytesIO(photo.body())).size) == 1600
    expect(host.locator("#f-questions .qedit").first.locator(".thumb:visible")).to_have_count(3)  # the form again
    assert host.is_checked("#o-intro"), "a quiz with pictures keeps its get-ready pause"
    host.fill("#o-intro-s", "1")
    host.click("#create")
    on_screen(host, "lobby")
    pin = host.inner_text("#l-pin").replace(" ", "")

    # Ada's phone gets no picture until we say so; Bob's loads them from the lobby on.
    _, ada = new_page(browser, errors, "ada", **PHONE)
    held = Held(ada)
    _, bob = new_page(browser, errors, "bob", **PHONE)
    join(ada, base, pin, "Ada")
    join(bob, base, pin, "Bob")
    on_screen(ada, "lobby")
    on_screen(bob, "lobby")
    expect(host.locator("#l-players li")).to_have_count(2)
    host.click("#l-start")
    on_screen(host, "ready")
    host.wait_for_function(DECODED, arg="#hg-image img")  # the projector shows the picture during the pause
    on_screen(host, "question")

    # Bob preloaded: his question is up as soon as it opened, every picture decoded when its countdown started.
    on_screen(bob, "question")
    bob_shown = bob.evaluate("window.quizroomTest.shown()")[0]
    assert bob_shown["index"] == 0 and bob_shown["decoded"] and bob_shown["pictures"] == [True, True, True]
    shots.shoot(bob, "player-question-pictures")

    # Ada has the question but not its pictures: she is still on "get ready", her countdown not started.
    ada.wait_for_function("window.quizroomTest.question() === 0")
    assert ada.evaluate("document.body.dataset.screen") == "ready"
    assert ada.evaluate("window.quizroomTest.shown()") == []
    assert held.routes, "the phone asked for the pictures"
    held.release()
    on_screen(ada, "question")
    ada_shown = ada.evaluate("window.quizroomTest.shown()")[0]
    assert ada_shown["decoded"] and ada_shown["pictures"] == [True, True, True], ada_shown
    assert ada_shown["at"] > bob_shown["at"], "Ada's question waited for its pictures"
    assert ada.evaluate(DECODED, "#screen-question img") and ada.inner_text("#q-timer").strip() != ""
    tiles = ada.locator("#q-choices .choice-picture")
    expect(tiles).to_have_count(2)
    assert tiles.nth(1).get_attribute("alt") == "Mercury", "a picture answer's text is its alternative text"

    # The projector: the question's picture large, the picture answers on their tiles.
    assert host.evaluate(DECODED, "#hq-image img") and host.evaluate(DECODED, "#hq-choices .choice-picture")
    shots.shoot(host, "host-question-pictures")
    for width, tall in ((1280, 720), (1920, 1080)):  # a projector's whole question fits its height
        host.set_viewport_size({"width": width, "height": tall})
        fit = host.evaluate(FIT)
        assert fit["picture"] >= 0.2 * tall and fit["lowest"] <= tall, (width, tall, fit)

    pick(ada, 1)
    pick(bob, 0)
    on_screen(ada, "result")
    expect(ada.locator("#r-title")).to_have_text("Correct!")
    on_screen(bob, "result")
    assert not errors, errors
