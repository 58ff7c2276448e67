"""Images in quizzes against a real server on both backends (docs/protocol.md, "Images"): uploads and every
refusal with its status and code, serving with immutable caching, ETag and 304, quizzes that may only name stored
images, the image URLs on the player's and host's sockets, and a quiz's archive there and back."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image

from tests import imagefiles
from tests.gameclient import Host
from tests.system.test_limits import Raw

MiB = 1 << 20
LIMIT = 10 * MiB  # QUIZROOM_MAX_IMAGE_BYTES's default


async def upload(http: httpx.AsyncClient, data: bytes, name: str = "photo.jpg", media: str = "image/jpeg") -> Any:
    response = await http.post("/api/images", files={"image": (name, data, media)})
    assert response.status_code == 201, response.text
    return response.json()


def refusal(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def question(**extra: Any) -> dict[str, Any]:
    return {"text": "Which one is the flag of Peru?", "choices": ["one", "two", "three"], "correct": [1], **extra}


# --- upload and serving ---------------------------------------------------------------------------------------


async def test_an_upload_is_cleaned_stored_and_served_immutable_with_an_etag(http: httpx.AsyncClient) -> None:
    raw = imagefiles.jpeg_with_gps(200, 100, orientation=6)
    created = await upload(http, raw, "IMG_0001.JPG")
    image_id = created["image_id"]
    assert created["url"] == f"/api/images/{image_id}" and created["content_type"] == "image/webp"
    assert (created["width"], created["height"]) == (100, 200), "the EXIF orientation is applied"

    served = await http.get(created["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["etag"] == f'"{image_id}"'
    assert served.headers["x-content-type-options"] == "nosniff"
    assert hashlib.sha256(served.content).hexdigest() == image_id and len(served.content) == created["bytes"]
    assert b"GPS" not in served.content and b"TestCam" not in served.content
    assert not Image.open(io.BytesIO(served.content)).getexif()

    for tag in (f'"{image_id}"', f'W/"{image_id}"', f'"other", "{image_id}"', "*"):
        again = await http.get(created["url"], headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b"", tag
        assert again.headers["etag"] == f'"{image_id}"' and "immutable" in again.headers["cache-control"]
    assert (await http.get(created["url"], headers={"If-None-Match": '"something else"'})).status_code == 200

    head = await http.head(created["url"])
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(created["bytes"]) and head.headers["content-type"] == "image/webp"

    assert refusal(await http.get(f"/api/images/{'0' * 64}")) == (404, "not_found")
    assert refusal(await http.get("/api/images/cat.png")) == (404, "not_found")

    # The same photo again, and the served bytes themselves, are the same image: same id, nothing decoded twice.
    assert (await upload(http, raw, "again.jpg"))["image_id"] == image_id
    raw_again = await http.post("/api/images", content=served.content, headers={"Content-Type": "image/webp"})
    assert raw_again.status_code == 201 and raw_again.json()["image_id"] == image_id


async def test_a_raw_image_body_is_an_upload_too(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/images", content=imagefiles.png(300, 200), headers={"Content-Type": "image/png"})
    assert response.status_code == 201, response.text
    assert (response.json()["width"], response.json()["height"]) == (300, 200)
    gif = await http.post("/api/images", content=imagefiles.gif_animated(), headers={"Content-Type": "image/gif"})
    assert gif.status_code == 201


def multipart(parts: list[tuple[str, str, bytes]], *, close: bool = True, boundary: str = "b0undary") -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + (f"--{boundary}--\r\n".encode() if close else b"")


FORM = {"Content-Type": "multipart/form-data; boundary=b0undary"}


async def test_every_refusal_has_its_status_and_code(http: httpx.AsyncClient) -> None:
    jpeg, png = imagefiles.jpeg(), imagefiles.png()

    async def form(name: str, filename: str, data: bytes, media: str = "application/octet-stream") -> httpx.Response:
        return await http.post("/api/images", files={name: (filename, data, media)})

    wrong_field = await form("file", "photo.jpg", jpeg)
    assert refusal(wrong_field) == (422, "invalid") and wrong_field.json()["error"]["field"] == "image"
    assert "`file`" in wrong_field.json()["error"]["message"]
    assert refusal(await form("image", "empty.png", b"")) == (422, "empty_file")
    assert refusal(await form("image", "notes.png", b"just some text, honest")) == (415, "not_an_image")
    assert refusal(await form("image", "drawing.bmp", imagefiles.encoded(Image.new("RGB", (9, 9)), "BMP"))) == (
        415,
        "not_an_image",
    )
    mismatch = await form("image", "photo.png", jpeg)
    assert refusal(mismatch) == (422, "type_mismatch") and "JPEG" in mismatch.json()["error"]["message"]
    assert refusal(await form("image", "photo", png, "image/jpeg")) == (422, "type_mismatch")
    bomb = await form("image", "bomb.png", imagefiles.bomb_png(10_000, 10_000), "image/png")
    assert refusal(bomb) == (422, "too_many_pixels") and "40,000,000" in bomb.json()["error"]["message"]

    raw_mismatch = await http.post("/api/images", content=jpeg, headers={"Content-Type": "image/png"})
    assert refusal(raw_mismatch) == (422, "type_mismatch")
    assert refusal(await http.post("/api/images", content=jpeg, headers={"Content-Type": "text/plain"})) == (
        415,
        "unsupported_media_type",
    )
    assert refusal(await http.post("/api/images", json={"image": "https://example.org/cat.jpg"})) == (
        415,
        "unsupported_media_type",
    )
    cut = multipart([("image", "a.png", png)], close=False)
    assert refusal(await http.post("/api/images", content=cut, headers=FORM)) == (400, "bad_upload")
    two = multipart([("image", "a.png", png), ("image", "b.png", png)])
    assert refusal(await http.post("/api/images", content=two, headers=FORM)) == (400, "bad_upload")
    no_boundary = {"Content-Type": "multipart/form-data"}
    assert refusal(await http.post("/api/images", content=multipart([]), headers=no_boundary)) == (400, "bad_upload")
    # Other fields beside the image are allowed (and ignored).
    beside = multipart([("title", "", b"my picture"), ("image", "a.png", png)])
    assert (await http.post("/api/images", content=beside, headers=FORM)).status_code == 201
    # One byte over the limit, sent whole: 413 too.
    over = await http.post("/api/images", content=b"\0" * (LIMIT + 1), headers={"Content-Type": "image/png"})
    assert refusal(over) == (413, "too_big")


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_too_big_upload_is_refused_before_it_is_read_whole(server: Any, framing: str) -> None:
    """The answer arrives while the client has sent only part of a 40 MiB upload: at once from `Content-Length`,
    or once the streamed bytes pass the limit."""
    total = 40 * MiB
    raw = await Raw.open(server.port)
    head = f"content-length: {total}" if framing == "content-length" else "transfer-encoding: chunked"
    raw.send(
        f"POST /api/images HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=b0undary\r\n{head}"
        "\r\n\r\n".encode()
    )
    part = b'--b0undary\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'
    raw.send(part if framing == "content-length" else b"%x\r\n%s\r\n" % (len(part), part))
    chunk = b"\0" * 65_536
    answer = asyncio.ensure_future(raw.response())
    sent = 0
    try:
        while sent < total and not answer.done():
            raw.send(chunk if framing == "content-length" else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            await raw.writer.drain()
            await asyncio.sleep(0)
        status, headers, body = await answer
    finally:
        answer.cancel()
        raw.close()
    assert status == 413 and orjson.loads(body)["error"]["code"] == "too_big"
    assert headers.get("connection") == "close"
    assert sent < total // 2, f"answered only after {sent} of {total} bytes"
    if framing == "chunked":
        assert sent >= LIMIT, "refused before the limit was reached"


async def test_uploads_need_the_admin_token_where_one_is_set_and_are_metered(
    start_server: Any, database_url: str
) -> None:
    server = start_server(
        database_url, "--admin-token", "s3cret", "--upload-rate-per-ip", "0.01", "--upload-burst", "2", relaxed=False
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        files = {"image": ("a.png", imagefiles.png(), "image/png")}
        refused = await http.post("/api/images", files=files)
        assert refusal(refused) == (401, "unauthorized")
        admin = {"Authorization": "Bearer s3cret"}
        created = await http.post("/api/images", files=files, headers=admin)
        assert created.status_code == 201
        assert (await http.get(created.json()["url"])).status_code == 200, "serving is public: phones load images"
        assert (await http.post("/api/images", files=files, headers=admin)).status_code == 201
        limited = await http.post("/api/images", files=files, headers=admin)
        assert refusal(limited) == (429, "rate_limited") and int(limited.headers["retry-after"]) >= 1


# --- quizzes that name images ----------------------------------------------------------------------------------


async def test_a_quiz_may_only_name_stored_images(http: httpx.AsyncClient) -> None:
    stored = (await upload(http, imagefiles.jpeg()))["image_id"]
    unknown = "e" * 64

    async def create(path: str, body: dict[str, Any]) -> httpx.Response:
        return await http.post(path, json=body)

    quiz_with = {"title": "Flags", "questions": [question(), question(image=unknown)]}
    response = await create("/api/quizzes", quiz_with)
    assert refusal(response) == (422, "invalid") and response.json()["error"]["field"] == "questions[1].image"
    choices = {"title": "Flags", "questions": [question(choice_images=[stored, unknown, None])]}
    response = await create("/api/quizzes", choices)
    assert response.json()["error"]["field"] == "questions[0].choice_images[1]"
    response = await create("/api/rooms", {"quiz": quiz_with})
    assert refusal(response) == (422, "invalid") and response.json()["error"]["field"] == "quiz.questions[1].image"
    url = {"title": "Flags", "questions": [question(image="https://example.org/flag.png")]}
    response = await create("/api/quizzes", url)
    assert response.json()["error"]["field"] == "questions[0].image", "external URLs are never fetched"

    good = {"title": "Flags", "questions": [question(image=stored, choice_images=[stored, None, stored])]}
    created = await create("/api/quizzes", good)
    assert created.status_code == 201
    read = (await http.get(f"/api/quizzes/{created.json()['quiz_id']}")).json()
    assert read["questions"][0]["image"] == stored and read["questions"][0]["choice_images"] == [stored, None, stored]


async def test_players_and_hosts_get_image_urls_and_the_pause_lists_them_to_preload(http: httpx.AsyncClient) -> None:
    flag = (await upload(http, imagefiles.jpeg(120, 80)))["image_id"]
    a, b = [(await upload(http, imagefiles.png(40 + i, 30), f"{i}.png", "image/png"))["image_id"] for i in range(2)]
    quiz = {
        "title": "Flags",
        "questions": [question(image=flag, choice_images=[a, None, b]), question()],
    }
    default = await http.post("/api/rooms", json={"quiz": quiz})
    assert default.status_code == 201
    state = await Host(http, default.json()).state()
    assert state["intro_ms"] == 3_000, "a quiz with images gets a get-ready pause when none was asked for"

    created = await http.post("/api/rooms", json={"quiz": quiz, "intro_ms": 300})
    host = Host(http, created.json())
    player = await host.join("Ann")
    welcome = await player.connect()
    assert welcome is not None
    assert welcome["images"] == [f"/api/images/{flag}", f"/api/images/{a}", f"/api/images/{b}"]
    await host.command("start")
    ready = await player.expect("get_ready")
    assert ready["image"] == f"/api/images/{flag}"
    assert ready["images"] == [f"/api/images/{flag}", f"/api/images/{a}", f"/api/images/{b}"]
    opened = await player.expect("question")
    assert opened["image"] == f"/api/images/{flag}"
    assert opened["choice_images"] == [f"/api/images/{a}", None, f"/api/images/{b}"]
    assert opened["choices"] == ["one", "two", "three"], "the texts stay: they are the images' alternative text"
    for url in ready["images"]:
        assert (await http.get(url)).status_code == 200
    await player.close()
    again = await player.connect()  # a reload mid-question restores the images too
    assert again is not None and again["question"]["choice_images"] == opened["choice_images"]
    await player.close()


# --- archives -------------------------------------------------------------------------------------------------


async def pictured_quiz(http: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    flag = (await upload(http, imagefiles.jpeg(400, 300)))["image_id"]
    cat = (await upload(http, imagefiles.png(64, 64, mode="RGBA"), "cat.png", "image/png"))["image_id"]
    quiz = {
        "title": "Pictures",
        "questions": [question(image=flag, choice_images=[cat, None, flag]), question()],
    }
    created = await http.post("/api/quizzes", json=quiz)
    assert created.status_code == 201
    return created.json()["quiz_id"], quiz


def zipped(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


async def test_a_quiz_archive_goes_there_and_back(http: httpx.AsyncClient, start_server: Any, tmp_path: Any) -> None:
    quiz_id, quiz = await pictured_quiz(http)
    exported = await http.get(f"/api/quizzes/{quiz_id}/archive")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    assert f"quizroom-quiz-{quiz_id}.zip" in exported.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        names = set(archive.namelist())
        flag, cat = quiz["questions"][0]["image"], quiz["questions"][0]["choice_images"][0]
        assert names == {"quiz.json", f"images/{flag}.webp", f"images/{cat}.webp"}
        assert (
            orjson.loads(archive.read("quiz.json"))["questions"]
            == (await http.get(f"/api/quizzes/{quiz_id}")).json()["questions"]
        )
        assert hashlib.sha256(archive.read(f"images/{flag}.webp")).hexdigest() == flag

    # Back into the same server: the images are ours already, so their ids stay.
    back = await http.post(
        "/api/quizzes/archive", content=exported.content, headers={"Content-Type": "application/zip"}
    )
    assert back.status_code == 201, back.text
    copy = (await http.get(f"/api/quizzes/{back.json()['quiz_id']}")).json()
    assert copy["questions"] == (await http.get(f"/api/quizzes/{quiz_id}")).json()["questions"]

    # Into another server (a fresh SQLite file): every image goes through the pipeline again and is stored there.
    elsewhere = start_server(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    async with httpx.AsyncClient(base_url=elsewhere.url, timeout=10) as other:
        imported = await other.post("/api/quizzes/archive", content=exported.content)
        assert imported.status_code == 201, imported.text
        assert imported.json()["images"] == 2
        moved = (await other.get(f"/api/quizzes/{imported.json()['quiz_id']}")).json()
        first = moved["questions"][0]
        assert first["text"] == quiz["questions"][0]["text"] and first["choice_images"][1] is None
        assert first["choice_images"][0] != first["choice_images"][2], "two images stay two"
        for image_id in (first["image"], first["choice_images"][0], first["choice_images"][2]):
            served = await other.get(f"/api/images/{image_id}")
            assert served.status_code == 200 and hashlib.sha256(served.content).hexdigest() == image_id
        room = await other.post("/api/rooms", json={"quiz_id": imported.json()["quiz_id"]})
        assert room.status_code == 201


async def test_bad_archives_are_refused_with_their_codes(http: httpx.AsyncClient) -> None:
    _, quiz = await pictured_quiz(http)
    flag = quiz["questions"][0]["image"]

    async def post(body: bytes) -> httpx.Response:
        return await http.post("/api/quizzes/archive", content=body, headers={"Content-Type": "application/zip"})

    assert refusal(await post(b"PK\x03\x04 not really a zip")) == (422, "bad_archive")
    assert refusal(await post(zipped({"readme.txt": b"hello"}))) == (422, "bad_archive")
    bad_quiz = await post(zipped({"quiz.json": orjson.dumps({"title": "", "questions": []})}))
    assert refusal(bad_quiz) == (422, "invalid") and bad_quiz.json()["error"]["field"] == "title"
    other = "d" * 64
    document = orjson.dumps({"title": "T", "questions": [question(image=other)]})
    missing = await post(zipped({"quiz.json": document}))
    assert refusal(missing) == (422, "invalid") and missing.json()["error"]["field"] == "questions[0].image"
    text = await post(zipped({"quiz.json": document, f"images/{other}.png": b"not a picture"}))
    assert refusal(text) == (415, "not_an_image") and f"images/{other}.png" in text.json()["error"]["message"]
    liar = await post(zipped({"quiz.json": document, f"images/{other}.png": imagefiles.jpeg()}))
    assert refusal(liar) == (422, "type_mismatch")
    bomb = await post(zipped({"quiz.json": document, f"images/{other}.png": imagefiles.bomb_png()}))
    assert refusal(bomb) == (422, "too_many_pixels")
    # An entry of zeros that inflates past the image limit is refused from its declared size, never inflated.
    zeros = await post(zipped({"quiz.json": document, f"images/{other}.png": b"\0" * (LIMIT + 1)}))
    assert refusal(zeros) == (413, "too_big")
    crowd = {f"junk/{i}.txt": b"" for i in range(1_500)}
    assert refusal(await post(zipped({"quiz.json": document, **crowd}))) == (422, "bad_archive")
    assert refusal(await http.get(f"/api/quizzes/{'f' * 32}/archive")) == (404, "not_found")
    assert flag  # the stored quiz's images are untouched by all this
    assert (await http.get(f"/api/images/{flag}")).status_code == 200


# --- the Python client ------------------------------------------------------------------------------------------


async def test_the_python_client_uploads_and_exposes_the_images_of_a_question(server: Any) -> None:
    from quizroom.clients.client import HostSocket, PlayerSocket, QuizroomAPI
    from quizroom.clients.messages import GetReady, HostWelcome, QuestionOpened, Welcome

    async with QuizroomAPI(server.url) as api:
        flag = await api.upload_image(imagefiles.jpeg(320, 240), "image/jpeg")
        assert (flag.width, flag.height, flag.content_type) == (320, 240, "image/webp")
        tile = await api.upload_image(imagefiles.png(50, 50), "image/png")
        quiz = {
            "title": "Client",
            "questions": [question(image=flag.image_id, choice_images=[None, tile.image_id, None])],
        }
        quiz_id = await api.create_quiz(quiz)
        room = await api.create_room(quiz_id=quiz_id, intro_ms=200)
        ticket = await api.join(room.pin, "Ada")
        async with await PlayerSocket.connect(ticket) as player, await HostSocket.connect(room) as host:
            assert isinstance(player.welcome, Welcome) and player.welcome.images == [flag.url, tile.url]
            assert isinstance(host.greeting, HostWelcome) and host.greeting.images == [flag.url, tile.url]
            await api.command(room, "start")
            ready = await player.expect(GetReady)
            assert ready.image == flag.url and ready.images == [flag.url, tile.url]
            opened = await player.expect(QuestionOpened)
            assert opened.image == flag.url and opened.choice_images == [None, tile.url, None]
            assert (await host.expect(QuestionOpened)).choice_images == opened.choice_images
            served = await api.image(opened.image)
            assert hashlib.sha256(served).hexdigest() == flag.image_id
            assert api.image_url(flag.image_id) == f"{server.url}{flag.url}"
        copy_id = await api.import_archive(await api.export_archive(quiz_id))
        assert (await api.get_quiz(copy_id))["questions"] == (await api.get_quiz(quiz_id))["questions"]
