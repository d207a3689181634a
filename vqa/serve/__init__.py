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

from vqa.serve.app import make_app
from vqa.serve.batching import MAX_UPLOAD, Batcher, Batching
from vqa.serve.server import Server, make_server

__all__ = ["MAX_UPLOAD", "Batcher", "Batching", "Server", "make_app", "make_server"]
