"""Where the HTTP API keeps images: the upload pipeline run in threads with bounded concurrency, the database, and
a small in-memory cache in front of it for the images being served.

One `ImageDesk` per process (on `app.state`), made from the settings. The cache matters at question time: without
the preload every phone of a room asks for the same image within the same second.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from quizroom.rooms.game.errors import InvalidInput
from quizroom.rooms.game.images import question_image_refs
from quizroom.rooms.game.quiz import Quiz
from quizroom.server.imaging import DECLARED_TYPES, Declared, check_declared, image_id_of, prepare_image
from quizroom.server.settings import Settings
from quizroom.storage.base import Storage
from quizroom.storage.records import ImageRow


class ImageCache:
    """The most recently served images, up to `max_bytes` of image data (least recently used leaves first)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._rows: OrderedDict[str, ImageRow] = OrderedDict()

    def get(self, image_id: str) -> ImageRow | None:
        row = self._rows.get(image_id)
        if row is not None:
            self._rows.move_to_end(image_id)
        return row

    def put(self, row: ImageRow) -> None:
        if len(row.data) > self.max_bytes or row.image_id in self._rows:
            return
        self._rows[row.image_id] = row
        self.bytes += len(row.data)
        while self.bytes > self.max_bytes:
            _, old = self._rows.popitem(last=False)
            self.bytes -= len(old.data)


class ImageDesk:
    """Uploads in, images out. At most `workers` images are decoded and re-encoded at once (CPU-bound, in threads,
    where Pillow releases the GIL), so uploads cannot starve the event loop's rooms of both cores."""

    def __init__(self, *, max_bytes: int, workers: int, cache_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.slots = asyncio.Semaphore(workers)
        self.cache = ImageCache(cache_bytes)

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageDesk:
        return cls(
            max_bytes=settings.max_image_bytes,
            workers=settings.image_workers,
            cache_bytes=settings.image_cache_bytes,
        )

    async def store(self, storage: Storage, raw: bytes, declared: Declared) -> ImageRow:
        """Run an upload through the pipeline and store the result; refusals raise their `ImageRefused`.

        Bytes that are already an image of ours (their hash is a stored id: a re-upload, an archive made here) are
        ours as they are: nothing to decode, and the id stays the same."""
        stored = await self.fetch(storage, image_id_of(raw)) if raw else None
        if stored is not None:
            check_declared(DECLARED_TYPES.get(stored.content_type, ""), declared)
            return stored
        async with self.slots:
            prepared = await asyncio.to_thread(prepare_image, raw, declared)
        row = ImageRow(
            prepared.image_id,
            prepared.content_type,
            prepared.width,
            prepared.height,
            prepared.data,
            time.time_ns() // 1_000_000,
        )
        await storage.put_image(row)
        self.cache.put(row)
        return row

    async def fetch(self, storage: Storage, image_id: str) -> ImageRow | None:
        row = self.cache.get(image_id)
        if row is None:
            row = await storage.get_image(image_id)
            if row is not None:
                self.cache.put(row)
        return row


async def check_quiz_images(storage: Storage, quiz: Quiz, prefix: str = "") -> None:
    """Refuse (422, the field's path) a quiz that names an image this server does not have. External URLs cannot
    get this far: a quiz names images by id only, and the server never fetches anything for a quiz."""
    refs = list(question_image_refs(quiz))
    if not refs:
        return
    known = await storage.known_images({image for _, image in refs})
    for field, image in refs:
        if image not in known:
            raise InvalidInput(f"{prefix}{field}", "no image with this id on this server (upload it: POST /api/images)")
