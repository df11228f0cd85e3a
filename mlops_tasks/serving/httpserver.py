"""A small HTTP/1.1 server on httptools and the asyncio (uvloop) event loop.

It does only what the model server needs, with as little work per request as
possible: requests are parsed by httptools in ``data_received`` and handed straight
to :meth:`ModelServerApp.handle` (no task, no ASGI message dicts), and each answer is
written with one ``transport.write``. Keep-alive and pipelining are supported
(answers leave in request order), as are chunked request bodies and
``Expect: 100-continue``. A body over the size limit is refused as soon as its
``Content-Length`` (or the running size of a chunked body) shows it: nothing more of
it is kept, the rest is read and discarded, and the answer is 413 (answering before
the client has finished sending would make the kernel reset the connection and the
client could lose the answer). No 100 Continue is sent for such a body.

Limits against clients that misbehave: a request line plus headers over
``max_header_bytes`` gets 431, and a request not received completely within
``request_timeout_s`` (counted from its first byte, or from the connection's opening for
its first request) gets 408; both close the connection after the answer. A refused
connection is closed gently: the answer is sent, the write side shut, and what the client
still sends is read and dropped for a moment, so the client reads the answer instead of a
connection reset.

Graceful stop (:func:`run`): on SIGTERM or SIGINT the listening socket is closed,
idle connections are closed, connections with requests in flight are closed once
those are answered, then the app flushes its prediction log.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import deque
from http import HTTPStatus
from typing import Any

import httptools

from mlops_tasks.errors import InvalidInputError
from mlops_tasks.serving.app import ModelServerApp

logger = logging.getLogger("mlops_tasks.serving")

_KEPT_HEADERS = frozenset(
    {
        b"content-type",
        b"x-request-id",
        b"content-length",
        b"expect",
        b"x-mlops-caller",
        b"x-ab-variant",
        b"x-subject-id",
    }
)
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))


class _Slot:
    """The answer to one request of a connection, kept until it can be written in order."""

    __slots__ = ("keep_alive", "head", "data")

    def __init__(self, keep_alive: bool, head: bool) -> None:
        self.keep_alive = keep_alive
        self.head = head
        self.data: bytes | None = None


class HttpProtocol(asyncio.Protocol):
    """One client connection.

    Args:
        app: The model server app that answers requests.
        connections: The server's set of open connections (for graceful stop).

    Example:
        ```python
        server = await loop.create_server(lambda: HttpProtocol(app, set()), "127.0.0.1", 8080)
        ```
    """

    def __init__(self, app: ModelServerApp, connections: set[HttpProtocol]) -> None:
        self.app = app
        self.limit = app.config.max_body_bytes
        self.header_limit = app.config.max_header_bytes
        self.request_timeout_s = app.config.request_timeout_s
        self.connections = connections
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.slots: deque[_Slot] = deque()
        self.closing = False
        self.last_active = time.monotonic()
        #: When the request being received started (None: between requests).
        self.receiving_since: float | None = self.last_active
        self.refused = False
        self._header_bytes = 0
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._error: InvalidInputError | None = None

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        """Register the new connection."""
        self.transport = transport
        self.connections.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the closed connection."""
        self.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        """Feed bytes to the parser; malformed HTTP gets 400 and a close."""
        self.last_active = time.monotonic()
        if self.refused:
            return  # a refused connection: drop what the client still sends
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fatal(400, b"Protocol upgrades are not supported.")
        except httptools.HttpParserError as exc:
            self._fatal(400, f"Malformed HTTP request: {exc}".encode())

    def _fatal(self, status: int, message: bytes, code: bytes = b"BAD_REQUEST") -> None:
        """Answer ``status`` and close gently (answer, shut the write side, drop the rest)."""
        transport = self.transport
        if transport is None or self.refused:
            return
        self.refused = True
        self.receiving_since = None
        self.slots.clear()
        body = b'{"error": "%s", "error_code": "%s"}' % (message.replace(b'"', b"'"), code)
        transport.write(
            _status_line(status)
            + b"content-type: application/json\r\nconnection: close\r\n"
            + b"content-length: %d\r\n\r\n" % len(body)
            + body
        )
        if transport.can_write_eof():
            transport.write_eof()
        self.app.metrics.request("other", status)
        asyncio.get_running_loop().call_later(2.0, self._close_now)

    def _close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def too_slow(self, now: float) -> bool:
        """A request is being received for longer than the request timeout."""
        since = self.receiving_since
        return since is not None and now - since > self.request_timeout_s

    def request_timed_out(self) -> None:
        """Answer 408 to a request that was not received within the request timeout."""
        self._fatal(
            408,
            b"Request not received within %g s; send the whole request at once." % self.request_timeout_s,
            b"REQUEST_TIMEOUT",
        )

    def shutdown(self) -> None:
        """Close now if idle, else once the requests in flight are answered."""
        self.closing = True
        if not self.slots and self.transport is not None:
            self.transport.close()

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        """httptools: a new request starts."""
        if self.receiving_since is None:
            self.receiving_since = time.monotonic()
        self._header_bytes = 0
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0
        self._error = None

    def on_url(self, url: bytes) -> None:
        """httptools: (part of) the request target."""
        self._url += url
        self._count_header_bytes(len(url))

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.header_limit:
            self._fatal(
                431,
                b"Request line and headers larger than the limit of %d bytes." % self.header_limit,
                b"REQUEST_HEADER_FIELDS_TOO_LARGE",
            )
            raise httptools.HttpParserError("header limit")  # stop this parse

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools: one header; only the ones the app reads are kept."""
        self._count_header_bytes(len(name) + len(value) + 4)
        name = name.lower()
        if name in _KEPT_HEADERS:
            self._headers[name] = value

    def on_headers_complete(self) -> None:
        """httptools: refuse an announced oversized body, answer 100-continue."""
        length = self._headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            self._error = self.app.body_too_large()
        elif self._headers.get(b"expect", b"").lower() == b"100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        """httptools: a body chunk (discarded once the body is refused)."""
        if self._error is not None:
            return  # discard the rest of a refused body
        self._size += len(body)
        if self._size > self.limit:
            self._error = self.app.body_too_large()
            self._body = []
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        """httptools: the request is complete; hand it to the app."""
        self.receiving_since = None
        method = self.parser.get_method().decode("latin-1")
        keep_alive = self.parser.should_keep_alive() and not self.closing
        slot = _Slot(keep_alive, method == "HEAD")
        self.slots.append(slot)
        url = self._url
        query = url.find(b"?")
        path = (url if query < 0 else url[:query]).decode("latin-1")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body = []

        def respond(status: int, headers: list[tuple[bytes, bytes]], out: bytes) -> None:
            self._complete(slot, status, headers, out)

        self.app.handle(method, path, self._headers, body, self._error, respond)

    # -- answers ------------------------------------------------------------------------

    def _complete(self, slot: _Slot, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if slot.data is not None:
            return
        parts = [_status_line(status)]
        for name, value in headers:
            parts.append(name + b": " + value + b"\r\n")
        if not slot.keep_alive or self.closing:
            slot.keep_alive = False
            parts.append(b"connection: close\r\n")
        parts.append(b"content-length: %d\r\n\r\n" % len(body))
        if not slot.head:
            parts.append(body)
        slot.data = b"".join(parts)
        self._drain()

    def _drain(self) -> None:
        if self.refused:
            return  # the connection was answered with an error and is closing
        slots = self.slots
        while slots and slots[0].data is not None:
            slot = slots.popleft()
            if self.transport is None:
                continue
            self.transport.write(slot.data)
            if not slot.keep_alive:
                self.transport.close()
                self.transport = None
        if self.closing and not slots and self.transport is not None:
            self.transport.close()
            self.transport = None


async def _close_idle(connections: set[HttpProtocol], timeout_s: float, request_timeout_s: float) -> None:
    """Close idle keep-alive connections; answer 408 to requests received too slowly."""
    while True:
        await asyncio.sleep(max(0.05, min(timeout_s / 2, request_timeout_s / 4, 5.0)))
        now = time.monotonic()
        cutoff = now - timeout_s
        for conn in list(connections):
            if conn.transport is None or conn.refused:
                continue
            if conn.too_slow(now):
                conn.request_timed_out()
            elif not conn.slots and conn.receiving_since is None and conn.last_active < cutoff:
                conn.transport.close()
                conn.transport = None


async def serve_forever(
    app: ModelServerApp,
    host: str,
    port: int,
    graceful_timeout_s: float = 30.0,
    keep_alive_timeout_s: float = 75.0,
) -> bool:
    """Serve ``app`` until SIGTERM/SIGINT or a fatal app error; then stop gracefully.

    Args:
        app: The model server app.
        host: Interface to bind.
        port: TCP port.
        graceful_timeout_s: How long to wait for requests in flight at shutdown.
        keep_alive_timeout_s: Idle keep-alive connections are closed after this long.

    Returns:
        ``True`` when the server listened (``False`` if the port could not be bound).

    Example:
        ```python
        asyncio.run(serve_forever(ModelServerApp(config), "127.0.0.1", 8080))
        ```
    """
    loop = asyncio.get_running_loop()
    connections: set[HttpProtocol] = set()
    try:
        server = await loop.create_server(
            lambda: HttpProtocol(app, connections),
            host,
            port,
            backlog=2048,
            reuse_address=True,
        )
    except OSError as exc:
        logger.error("cannot listen on %s:%s: %s", host, port, exc)
        return False
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app.on_fatal = stop.set
    app.start()
    logger.info("listening on http://%s:%s", host, port)
    sweeper = asyncio.ensure_future(
        _close_idle(connections, keep_alive_timeout_s, app.config.request_timeout_s)
    )
    try:
        await stop.wait()
    finally:
        sweeper.cancel()
        server.close()
        for conn in list(connections):
            conn.shutdown()
        deadline = time.monotonic() + graceful_timeout_s
        while connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(connections):
            if conn.transport is not None:
                conn.transport.close()
        await server.wait_closed()
        app.shutdown()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return True
