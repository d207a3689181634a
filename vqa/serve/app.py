"""The FastAPI app: the page, /api/answer, /api/model, /healthz, and the form's checks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import logging
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from vqa.errors import ImageError, VQAError
from vqa.inference import AnswerResult
from vqa.serve.batching import _MAX_BODY, _MAX_TOP_K, MAX_UPLOAD, Batcher, Batching, _Refused

log = logging.getLogger(__name__)


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

    @app.exception_handler(405)
    async def wrong_method(request, exc):  # Starlette's own answer is {"detail": ...}
        return JSONResponse(
            {
                "error": f"{request.method} is not allowed on {request.url.path}: "
                "POST the form there (see /docs)."
            },
            405,
            headers=dict(getattr(exc, "headers", None) or {}),  # Allow: POST
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
