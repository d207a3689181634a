"""Micro-batching: requests gathered into model calls, a bounded queue, refusals."""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from vqa.errors import VQAError
from vqa.inference import AnswerResult

log = logging.getLogger(__name__)

MAX_UPLOAD = 10 * 1024 * 1024  # bytes of image
_MAX_BODY = MAX_UPLOAD + 64 * 1024  # the image, the other fields and the multipart framing
_MAX_TOP_K = 20


@dataclass(frozen=True)
class Batching:
    """How requests are gathered into model calls, and how long a client may stall."""

    max_batch: int = 32  # requests answered in one model call, at most
    max_wait_ms: float = 2.0  # how long the first request of a batch waits for company
    max_queue: int = 256  # requests waiting beyond this are refused (503)
    read_timeout_s: float = 30.0  # a body not received in this long is refused (408)

    def __post_init__(self) -> None:
        if (
            self.max_batch < 1
            or self.max_queue < 1
            or self.max_wait_ms < 0
            or self.read_timeout_s <= 0
        ):
            raise VQAError(
                f"Invalid batching settings: {self}. max_batch and max_queue "
                "must be >= 1, max_wait_ms >= 0, read_timeout_s > 0."
            )


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Batcher:
    """A bounded queue of questions and the task that answers them in batches."""

    def __init__(self, answerer, batching: Batching):
        self.answerer, self.batching = answerer, batching
        self.queue: asyncio.Queue | None = None
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="vqa-model")
        self.batches = self.answered = 0

    async def run(self) -> None:
        self.queue = asyncio.Queue(self.batching.max_queue)
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.batching.max_wait_ms / 1000
            while len(batch) < self.batching.max_batch:
                if not self.queue.empty():  # waiting already: no need to wait for them
                    batch.append(self.queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            await self._answer(loop, batch)

    async def answer(self, image: bytes, question: str, top_k: int) -> AnswerResult | VQAError:
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((image, question, top_k, future))
        except asyncio.QueueFull:
            raise _Refused(
                503,
                f"The server is busy ({self.batching.max_queue} requests "
                "waiting); try again shortly.",
            ) from None
        return await future

    async def _answer(self, loop, batch: list) -> None:
        top_k = max(item[2] for item in batch)
        call = functools.partial(
            self.answerer.answer_batch,
            [b[0] for b in batch],
            [b[1] for b in batch],
            top_k=top_k,
            on_error="return",
            batch_size=len(batch),
        )
        try:
            results = await loop.run_in_executor(self.model_thread, call)
        except Exception as exc:  # a bug: every request of the batch gets a 500
            log.exception("answering a batch of %d failed", len(batch))
            results = [exc] * len(batch)
        self.batches, self.answered = self.batches + 1, self.answered + len(batch)
        for (_, _, k, future), result in zip(batch, results):
            if future.done():  # the client went away
                continue
            if isinstance(result, AnswerResult) and k < top_k:
                result = replace(result, top_k=result.top_k[:k])
            future.set_result(result)
