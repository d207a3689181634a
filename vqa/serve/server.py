"""The uvicorn server around the app, on a socket bound before it starts."""

from __future__ import annotations

import logging
import socket
import threading

import numpy as np

from vqa.errors import VQAError
from vqa.serve.app import make_app
from vqa.serve.batching import Batching

log = logging.getLogger(__name__)


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
