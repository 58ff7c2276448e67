"""The images table on both backends (storage/base.py: `put_image`, `get_image`, `known_images`)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from quizroom.storage import Storage, open_storage
from quizroom.storage.records import ImageRow


def image(data: bytes, width: int = 4, height: int = 3) -> ImageRow:
    return ImageRow(hashlib.sha256(data).hexdigest(), "image/webp", width, height, data, 1_000)


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = open_storage(database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_an_image_is_stored_once_under_its_hash_and_read_back_byte_for_byte(storage: Storage) -> None:
    data = bytes(range(256)) * 1_000  # every byte value, 256 kB: a blob, not text
    row = image(data)
    await storage.put_image(row)
    await storage.put_image(row)  # the same id again is left as it is, never an error
    assert await storage.get_image(row.image_id) == row
    assert await storage.get_image("0" * 64) is None


async def test_known_images_names_only_the_stored_ones(storage: Storage) -> None:
    stored = [image(b"a"), image(b"b")]
    for row in stored:
        await storage.put_image(row)
    asked = {stored[0].image_id, stored[1].image_id, "f" * 64}
    assert await storage.known_images(asked) == {stored[0].image_id, stored[1].image_id}
    assert await storage.known_images([]) == frozenset()
    assert await storage.known_images(["f" * 64]) == frozenset()
