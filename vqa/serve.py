"""`vqa serve`: a page to try a model, and a JSON API for programs, on FastAPI and uvicorn.

    GET  /            the page (vqa/static/index.html)
    POST /api/answer  multipart/form-data: image (file), question, top_k (optional, 3),
                      overlay (optional, "1": add the explanation PNG as a data URL),
                      grad_cam (optional, "1": a model without attention adds its
                      Grad-CAM map, [[...]] or null where it has none)
        200 {"question", "answer", "probability", "top_k": [{"answer", "probability"}],
             "unknown_words", "attention": [[...]] or null (the hops' maps averaged),
             "hop_attention": [[[...]]] or null (each hop's map), "warnings", "model",
             "overlay" (when asked)}
        4xx/5xx {"error": "one line"}: 400 bad form or question, 408 a body slower than
             the read timeout, 411 no Content-Length, 413 over 10 MB, 415 not multipart
             or not an image, 503 the queue is full
    GET  /api/model   the model card; GET /healthz: {"status": "ok", "queued": n}
    GET  /docs        the API's OpenAPI page (/openapi.json)

Micro-batching: requests that arrive while the model is busy, or within `max_wait_ms`
of each other, are answered in one model call of up to `max_batch` (images decoded in
that call's thread, off the event loop). At most `max_queue` requests wait; one more
is answered 503 at once. A model is a run directory (vqa.Answerer) or an exported
bundle (vqa.runtime.Bundle): anything with answer_batch, explain and summary.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from vqa.errors import ImageError, VQAError
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


def make_app(answerer, batching: Batching = Batching(), captioner=None):
    """The FastAPI application answering with `answerer`; with `captioner` (a
    vqa.captioning.Captioner) every answer also comes with the image's caption, and
    POST /api/caption describes an image alone."""
    batcher = Batcher(answerer, batching)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.model_thread.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="vqa",
        version=_version(),
        lifespan=lifespan,
        description="Answers questions about images. " + (answerer.summary or ""),
    )
    app.state.batcher = batcher

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(_page(), headers={"Cache-Control": "no-store"})

    @app.get("/healthz", summary="For orchestrators: the server answers")
    async def healthz():
        return {
            "status": "ok",
            "queued": batcher.queue.qsize() if batcher.queue else 0,
            "batches": batcher.batches,
            "answered": batcher.answered,
        }

    @app.get("/api/model", summary="The model card: what the model was trained on")
    async def model():
        return {
            "summary": answerer.summary,
            "card": answerer.card,
            "answers": len(answerer.answers.tokens),
            "preprocessing": answerer.preprocessing.to_dict(),
            "captions": captioner is not None,
        }

    @app.post("/api/answer", summary="Answer a question about an image", openapi_extra=_FORM_SCHEMA)
    async def api_answer(request: Request):
        try:
            fields = await _read_form(request, batching)
            reply = await _answer(batcher, answerer, fields)
            if captioner is not None:
                reply["caption"] = await _caption(captioner, fields)
        except _Refused as exc:
            return JSONResponse(
                {"error": exc.message}, exc.status, headers={"Cache-Control": "no-store"}
            )
        return JSONResponse(reply, headers={"Cache-Control": "no-store"})

    if captioner is not None:

        @app.post(
            "/api/caption",
            summary="Describe an image (form fields: image; decode "
            "greedy | sample | beam, beam_size, temperature, seed)",
        )
        async def api_caption(request: Request):
            try:
                reply = await _caption(captioner, await _read_form(request, batching))
            except _Refused as exc:
                return JSONResponse(
                    {"error": exc.message}, exc.status, headers={"Cache-Control": "no-store"}
                )
            return JSONResponse(reply, headers={"Cache-Control": "no-store"})

    @app.exception_handler(404)
    async def not_found(request, exc):
        return JSONResponse(
            {
                "error": f"Not found: {request.url.path}. The page is at /; "
                "programs POST to /api/answer (see /docs)."
            },
            404,
        )

    return app


async def _read_form(request, batching: Batching) -> dict[str, tuple[str | None, bytes]]:
    """The form's fields: name -> (file name or None, content); refusals before reading
    a body that is too large or not a form."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise _Refused(
            415,
            "Send multipart/form-data with an image file (field 'image') "
            "and a question (field 'question').",
        )
    value = request.headers.get("content-length")
    if value is None:
        raise _Refused(411, "Send a Content-Length header.")
    if not value.isdigit():
        raise _Refused(400, f"Bad Content-Length: {value!r}")
    if int(value) > _MAX_BODY:
        raise _Refused(
            413,
            f"The upload is {int(value) / 2**20:.1f} MB; the limit is {MAX_UPLOAD // 2**20} MB.",
        )
    from starlette.requests import ClientDisconnect

    try:
        await asyncio.wait_for(request.body(), batching.read_timeout_s)
    except TimeoutError:
        raise _Refused(
            408, f"The request body did not arrive within {batching.read_timeout_s:g} s."
        ) from None
    except ClientDisconnect:
        raise _Refused(400, "The request body ended before its Content-Length.") from None
    try:
        form = await request.form(max_files=4, max_fields=16)
    except Exception as exc:  # python-multipart's parse errors
        raise _Refused(400, f"The multipart form could not be read: {exc}") from None
    fields = {}
    for name, item in form.multi_items():
        if hasattr(item, "read"):  # an UploadFile
            fields[name] = (item.filename, await item.read())
        else:
            fields[name] = (None, item.encode())
    return fields


async def _answer(batcher: Batcher, answerer, fields: dict) -> dict:
    file_name, image = fields.get("image", (None, b""))
    if not image:
        raise _Refused(400, "No image: send the image file in the form field 'image'.")
    if len(image) > MAX_UPLOAD:
        raise _Refused(
            413, f"The image is {len(image) / 2**20:.1f} MB; the limit is {MAX_UPLOAD // 2**20} MB."
        )
    question = fields.get("question", (None, b""))[1].decode("utf-8", "replace")
    top_k = fields.get("top_k", (None, b"3"))[1].decode("ascii", "replace").strip()
    if not top_k.isdigit() or not 1 <= int(top_k) <= _MAX_TOP_K:
        raise _Refused(
            400, f"top_k must be a whole number from 1 to {_MAX_TOP_K}. Received: {top_k!r}"
        )
    overlay, cam = (
        fields.get(name, (None, b""))[1].strip().lower() in (b"1", b"true", b"on")
        for name in ("overlay", "grad_cam")
    )
    png = io.BytesIO()
    if overlay:  # drawn one at a time, beside the batches
        explain = functools.partial(answerer.explain, image, question, png, top_k=int(top_k))
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, explain)
        except VQAError as exc:
            result = exc
    else:
        result = await batcher.answer(image, question, int(top_k))
    if isinstance(result, ImageError):
        raise _Refused(415, f"{file_name or 'the upload'}: {result}")
    if isinstance(result, VQAError):  # the question
        raise _Refused(400, str(result))
    if isinstance(result, Exception):
        raise _Refused(500, "Internal error while answering; see the server's log.")
    reply = {**_as_json(result), "model": answerer.summary}
    if cam and result.attention is None:  # where the answer came from, for the page
        grad_cam = functools.partial(answerer.grad_cam, image, question, result.answer)
        reply["grad_cam"] = _rounded(
            await asyncio.get_running_loop().run_in_executor(None, grad_cam)
        )
    if overlay:
        reply["overlay"] = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    return reply


async def _caption(captioner, fields: dict) -> dict:
    """The caption of the form's image, word by word (beam search of 3 by default)."""
    file_name, image = fields.get("image", (None, b""))
    if not image:
        raise _Refused(400, "No image: send the image file in the form field 'image'.")
    text = {
        k: fields[k][1].decode("utf-8", "replace").strip()
        for k in ("decode", "beam_size", "temperature", "seed")
        if k in fields
    }
    try:
        kwargs = {
            "beam_size": int(text.get("beam_size", 3)),
            "temperature": float(text.get("temperature", 1.0)),
            "seed": int(text["seed"]) if "seed" in text else None,
        }
    except ValueError:
        raise _Refused(
            400, f"beam_size and seed must be whole numbers, temperature a number. Received: {text}"
        ) from None
    caption = functools.partial(captioner.caption, image, text.get("decode", "beam"), **kwargs)
    try:
        result = await asyncio.get_running_loop().run_in_executor(None, caption)
    except ImageError as exc:
        raise _Refused(415, f"{file_name or 'the upload'}: {exc}") from None
    except VQAError as exc:
        raise _Refused(400, str(exc)) from None
    return result.to_dict()


class Server:
    """`make_app` on uvicorn, listening on a socket bound at construction (port 0 picks
    a free one; `server_address` says which)."""

    def __init__(self, app, host: str, port: int):
        import uvicorn

        try:
            self.socket = _listen(host, port)
        except OSError as exc:
            raise VQAError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}. "
                "Choose another --port or --host."
            ) from None
        self.server_address = self.socket.getsockname()
        config = uvicorn.Config(
            app, log_level="warning", timeout_keep_alive=5, timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        """Serve until `shutdown` (or, in the main thread, Ctrl-C)."""
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self._server.should_exit = True
        self._stopped.wait(10)

    def server_close(self) -> None:
        self.socket.close()


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Made with proto IPPROTO_TCP, not 0 (socket.create_server):
    asyncio sets TCP_NODELAY only on such sockets' connections, and without it a reply
    written in two pieces waits out the client's delayed ACK, 40 ms a request on a
    kept-alive connection."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def make_server(
    answerer,
    host: str = "127.0.0.1",
    port: int = 8000,
    batching: Batching = Batching(),
    captioner=None,
) -> Server:
    """A server (not yet serving) answering with `answerer`.

    The first model call traces the graph (about a second); it is made here, so that
    the first visitor does not wait for it."""
    answerer.answer(np.full((64, 64, 3), 128, np.uint8), "what is this?")
    return Server(make_app(answerer, batching, captioner), host, port)


def _page() -> bytes:
    return (resources.files("vqa") / "static" / "index.html").read_bytes()


def _version() -> str:
    from vqa import __version__

    return __version__


def _as_json(result: AnswerResult) -> dict:
    return {
        "question": result.question,
        "answer": result.answer,
        "probability": result.probability,
        "top_k": [{"answer": a, "probability": p} for a, p in result.top_k],
        "unknown_words": result.unknown_words,
        "attention": _rounded(result.attention),
        "hop_attention": _rounded(result.hop_attention),
        "warnings": result.warnings,
    }


def _rounded(weights: np.ndarray | None) -> list | None:
    return None if weights is None else np.round(weights.astype(float), 5).tolist()


_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image", "question"],
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "an image file",
                        },
                        "question": {"type": "string", "example": "what color is the shape?"},
                        "top_k": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": _MAX_TOP_K,
                            "default": 3,
                        },
                        "overlay": {
                            "type": "string",
                            "enum": ["0", "1"],
                            "default": "0",
                            "description": "1: add the explanation PNG as a data URL",
                        },
                        "grad_cam": {
                            "type": "string",
                            "enum": ["0", "1"],
                            "default": "0",
                            "description": "1: a model without attention adds its Grad-CAM map",
                        },
                    },
                }
            }
        },
    }
}
