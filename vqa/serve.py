"""`vqa serve`: a page to try a trained run, and a JSON API for programs.

    GET  /            the page (vqa/static/index.html)
    POST /api/answer  multipart/form-data: image (file), question, top_k (optional, 3),
                      overlay (optional, "1": add the explanation PNG as a data URL)
        200 {"question", "answer", "probability", "top_k": [{"answer", "probability"}],
             "unknown_words", "attention": [[...]] or null (the hops' maps averaged),
             "hop_attention": [[[...]]] or null (each hop's map), "overlay" (when asked)}
        4xx {"error": "one line"}: 400 bad form or question, 411 no Content-Length,
             413 over 10 MB, 415 not multipart or not an image

The standard library's threading server: a thread per request, one shared Answerer
(whose model calls take turns).
"""

from __future__ import annotations

import base64
import email.policy
import io
import json
import logging
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import numpy as np

from vqa.answering import Answerer, AnswerResult
from vqa.errors import ImageError, VQAError

log = logging.getLogger(__name__)

MAX_UPLOAD = 10 * 1024 * 1024  # bytes of image
_MAX_BODY = MAX_UPLOAD + 64 * 1024  # the image, the other fields and the multipart framing
_MAX_TOP_K = 20


class _Refused(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def make_server(answerer: Answerer, host: str = "127.0.0.1", port: int = 8000
                ) -> ThreadingHTTPServer:
    """A server (not yet serving) answering with `answerer`; port 0 picks a free one.

    The first model call traces the graph (about a second); it is made here, so that
    the first visitor does not wait for it.
    """
    answerer.answer(np.full((64, 64, 3), 128, np.uint8), "what is this?")
    handler = type("Handler", (_Handler,), {"answerer": answerer})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise VQAError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. "
                       "Choose another --port or --host.") from None
    server.daemon_threads = True  # Ctrl-C does not wait for open connections
    return server


def _page() -> bytes:
    return (resources.files("vqa") / "static" / "index.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    answerer: Answerer
    server_version = "vqa"
    timeout = 30  # seconds a client may stall mid-request before its thread gives up

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] in ("/", "/index.html"):
            self._send(HTTPStatus.OK, _page(), "text/html; charset=utf-8")
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"Not found: {self.path}. The page is at /; "
                             "programs POST to /api/answer.")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/api/answer":
            self._send_error(HTTPStatus.NOT_FOUND, f"Not found: {self.path}. "
                             "POST multipart/form-data to /api/answer.")
            return
        try:
            reply = self._answer(self._read_form())
        except _Refused as exc:
            self._send_error(exc.status, exc.message)
        except Exception:  # a bug: the client gets a 500, the log gets the traceback
            log.exception("answering %s failed", self.path)
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR,
                             "Internal error while answering; see the server's log.")
        else:
            self._send(HTTPStatus.OK, json.dumps(reply).encode(), "application/json")

    def _read_form(self) -> dict[str, tuple[str | None, bytes]]:
        """The form's fields: name -> (file name or None, content)."""
        content_type = self.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            self._discard_body()
            raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Send multipart/form-data with "
                           "an image file (field 'image') and a question (field 'question').")
        length = self._content_length()
        if length > _MAX_BODY:
            self._discard_body()
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"The upload is {length / 2**20:.1f} MB; the limit is "
                           f"{MAX_UPLOAD // 2**20} MB.")
        try:
            body = self.rfile.read(length)
        except OSError:  # the client stalled past `timeout`, or went away
            body = b""
        if len(body) < length:
            self.close_connection = True
            raise _Refused(HTTPStatus.BAD_REQUEST, "The request body ended before its "
                           "Content-Length.")
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
        if not message.is_multipart():
            raise _Refused(HTTPStatus.BAD_REQUEST, "The multipart form could not be read "
                           "(is the boundary in the Content-Type header?).")
        fields = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
        return fields

    def _answer(self, fields: dict[str, tuple[str | None, bytes]]) -> dict:
        file_name, image = fields.get("image", (None, b""))
        if not image:
            raise _Refused(HTTPStatus.BAD_REQUEST, "No image: send the image file in the "
                           "form field 'image'.")
        if len(image) > MAX_UPLOAD:
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"The image is {len(image) / 2**20:.1f} MB; the limit is "
                           f"{MAX_UPLOAD // 2**20} MB.")
        question = fields.get("question", (None, b""))[1].decode("utf-8", "replace")
        top_k = fields.get("top_k", (None, b"3"))[1].decode("ascii", "replace").strip()
        if not top_k.isdigit() or not 1 <= int(top_k) <= _MAX_TOP_K:
            raise _Refused(HTTPStatus.BAD_REQUEST, f"top_k must be a whole number from 1 to "
                           f"{_MAX_TOP_K}. Received: {top_k!r}")
        overlay = fields.get("overlay", (None, b""))[1].strip().lower() in (b"1", b"true", b"on")
        png = io.BytesIO()
        try:
            if overlay:
                result = self.answerer.explain(image, question, png, top_k=int(top_k))
            else:
                result = self.answerer.answer(image, question, top_k=int(top_k))
        except ImageError as exc:
            raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           f"{file_name or 'the upload'}: {exc}") from None
        except VQAError as exc:  # the question
            raise _Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None
        reply = {**_as_json(result), "model": self.answerer.summary}
        if overlay:
            reply["overlay"] = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
        return reply

    def _content_length(self) -> int:
        value = self.headers.get("Content-Length")
        if value is None:
            raise _Refused(HTTPStatus.LENGTH_REQUIRED, "Send a Content-Length header.")
        try:
            length = int(value)
        except ValueError:
            length = -1
        if length < 0:
            raise _Refused(HTTPStatus.BAD_REQUEST, f"Bad Content-Length: {value!r}")
        return length

    def _discard_body(self) -> None:
        """Read what the client sends (up to a bound) before refusing it: a client still
        writing when the connection closes would see a reset instead of our answer."""
        self.close_connection = True
        try:
            left = min(int(self.headers.get("Content-Length") or 0), 8 * _MAX_BODY)
        except ValueError:
            return
        while left > 0:
            try:
                chunk = self.rfile.read(min(left, 1 << 20))
            except OSError:  # the client stalled past `timeout`, or went away
                return
            if not chunk:
                return
            left -= len(chunk)

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002  (the base's name)
        log.info("%s %s", self.address_string(), format % args)


def _as_json(result: AnswerResult) -> dict:
    return {"question": result.question, "answer": result.answer,
            "probability": result.probability,
            "top_k": [{"answer": a, "probability": p} for a, p in result.top_k],
            "unknown_words": result.unknown_words,
            "attention": _rounded(result.attention),
            "hop_attention": _rounded(result.hop_attention),
            "warnings": result.warnings}


def _rounded(weights: np.ndarray | None) -> list | None:
    return None if weights is None else np.round(weights.astype(float), 5).tolist()
