"""The model server app: endpoints, micro-batching, metrics and the prediction log.

:meth:`ModelServerApp.handle` answers one request through a callback; it is driven
by the built-in httptools protocol (:mod:`mlops_tasks.serving.httpserver`, the
default) or, through the ASGI adapter (the app is an ASGI callable), by uvicorn or
any ASGI server. Requests that arrive together are answered by one ``predict``
call: each ``/invocations`` request parses its body and queues itself; the first
one schedules a flush on the next event-loop turn, which predicts every queued
request at once. Under load the batch is as large as the number of requests in
flight; alone, a request waits for no one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mlops_tasks.errors import InvalidInputError, ModelLoadError
from mlops_tasks.serving.inputs import ExtraColumns, ParsedInput
from mlops_tasks.serving.metrics import ServerMetrics
from mlops_tasks.serving.model import LoadedModel, load_model
from mlops_tasks.serving.predictor import Predictor

logger = logging.getLogger("mlops_tasks.serving")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
#: Request header naming the caller (the API key's name); the router removes any a client
#: sent and sets it from the key, so the prediction log records who sent each request.
CALLER_HEADER = b"x-mlops-caller"
#: Request line plus headers larger than this get 431 (HAProxy's own buffer is 16 KiB).
DEFAULT_MAX_HEADER_BYTES = 32 * 1024


def server_version() -> str:
    """The installed mlops-tasks version (``0.0.0`` when not installed).

    Example:
        ```python
        assert server_version().count(".") >= 2
        ```
    """
    try:
        from importlib.metadata import version

        return version("mlops-tasks")
    except Exception:
        return "0.0.0"


def default_log_sink() -> str:
    """``$MLOPS_PREDICTION_LOG``, else ``<$MLOPS_STATE_DIR or ./.mlops>/prediction-log``.

    Example:
        ```python
        assert default_log_sink().endswith("prediction-log")  # with neither variable set
        ```
    """
    env = os.environ.get("MLOPS_PREDICTION_LOG")
    if env:
        return env
    state = os.environ.get("MLOPS_STATE_DIR") or ".mlops"
    return str(Path(state).expanduser().resolve() / "prediction-log")


@dataclass
class ServerConfig:
    """Settings of one model server.

    Args:
        model_uri: ``models:/name@alias``, ``models:/name/version``, ``runs:/...`` or a
            local MLflow model folder.
        host: Interface to bind.
        port: TCP port (0 picks a free one).
        instance_name: Slot or instance name for ``X-Served-By`` and the log
            (default ``hostname:port``).
        max_body_bytes: Larger bodies get 413.
        log_sink: Prediction log folder or ``s3://`` prefix; ``None`` disables the log.
        log_format: ``parquet`` or ``jsonl``.
        log_flush_interval_s: Seconds between log flushes.
        log_retention_hours: Delete log partitions older than this; 0 keeps all.
        s3_endpoint_url: S3 endpoint for an ``s3://`` sink.
        max_batch_rows: Upper bound of rows in one micro-batched predict call
            (1 turns batching off).
        fast_path: Allow the NumPy matrix fast path for numeric models.
        model_cache_dir: Where registry models are downloaded (temporary by default).
        graceful_timeout_s: How long shutdown waits for requests in flight.
        keep_alive_timeout_s: Idle keep-alive connections are closed after this long
            (built-in HTTP front end).
        extra_columns: Request columns the model's signature does not name: ``ignore``
            (dropped, as MLflow's scoring server does) or ``reject`` (422).
        tracking_uri: MLflow store to resolve ``models:/`` and ``runs:/`` URIs in; ``None``:
            ``MLFLOW_TRACKING_URI``, else the state folder's store.
        registry_uri: MLflow registry, when not the tracking store.
        max_header_bytes: A request line plus headers larger than this gets 431
            (built-in HTTP front end).
        request_timeout_s: A request (or a new connection's first request) not received
            completely within this long gets 408 and the connection is closed, so a slow
            client cannot hold the server (built-in HTTP front end).

    Example:
        ```python
        config = ServerConfig(model_uri="models:/churn@champion", port=8080,
                              log_sink="s3://ml-logs/churn")
        ```
    """

    model_uri: str
    host: str = "127.0.0.1"
    port: int = 8080
    instance_name: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_sink: str | None = None
    log_format: str = "parquet"
    log_flush_interval_s: float = 2.0
    log_retention_hours: float = 24 * 30
    s3_endpoint_url: str | None = None
    max_batch_rows: int = 4096
    fast_path: bool = True
    model_cache_dir: str | None = None
    graceful_timeout_s: float = 30.0
    keep_alive_timeout_s: float = 75.0
    extra_columns: ExtraColumns = "ignore"
    tracking_uri: str | None = None
    registry_uri: str | None = None
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    request_timeout_s: float = 30.0

    def served_by(self) -> str:
        """The instance name, defaulting to ``hostname:port``."""
        return self.instance_name or f"{socket.gethostname()}:{self.port}"


Respond = Callable[[int, list[tuple[bytes, bytes]], bytes], None]
_METRICS_HEADERS = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]


class _Call:
    """One /invocations request on its way through the batcher."""

    __slots__ = ("request_id", "started", "respond", "headers", "parsed", "caller", "variant", "subject")

    def __init__(
        self,
        request_id: str,
        started: float,
        respond: Respond,
        headers: list[tuple[bytes, bytes]],
        caller: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.caller = caller
        self.started = started
        self.respond = respond
        self.headers = headers
        self.parsed: ParsedInput | None = None
        #: A/B test: the variant the router assigned (``X-Ab-Variant``) and the caller's subject.
        self.variant: str | None = None
        self.subject: str | None = None

    @property
    def parsed_input(self) -> ParsedInput:
        """The parsed body; set before the call is answered or queued."""
        assert self.parsed is not None
        return self.parsed


def _header_text(headers: dict[bytes, bytes], name: bytes) -> str | None:
    """A header's value when it is short printable text (else ``None``)."""
    raw = headers.get(name)
    if not raw:
        return None
    text = raw.decode("latin-1")
    return text if len(text) <= 200 and text.isprintable() else None


def _json(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


class ModelServerApp:
    """The model server app (also an ASGI app).

    It loads the model in a background thread at startup (``/health`` answers 503
    until it is loaded and warmed up), then serves ``/ping``, ``/health``,
    ``/version``, ``/metrics`` and ``/invocations``. If the model cannot be loaded it
    records the error and calls ``on_fatal`` so the process can exit.

    Args:
        config: Server settings.
        on_fatal: Called (in the event loop) when the model cannot be loaded.

    Example:
        ```python
        import uvicorn
        app = ModelServerApp(ServerConfig(model_uri="/models/churn", port=8080))
        uvicorn.run(app, port=8080, http="httptools", lifespan="on")
        ```
    """

    def __init__(self, config: ServerConfig, on_fatal: Callable[[], None] | None = None) -> None:
        self.config = config
        self.on_fatal = on_fatal
        self.served_by = config.served_by()
        self.metrics = ServerMetrics()
        self.model: LoadedModel | None = None
        self.predictor: Predictor | None = None
        self.log_writer: Any = None
        self.load_error: BaseException | None = None
        self.ready = False
        self.started_at = time.time()
        self.version = server_version()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[_Call] = []
        self._queued_rows = 0
        self._flush_scheduled = False
        self._labels: dict[str, str] = {"model_name": "", "model_version": ""}
        self._static_headers: list[tuple[bytes, bytes]] = []
        self._set_headers()

    # -- lifecycle -------------------------------------------------------------------

    def _set_headers(self) -> None:
        name = self.model.info.name if self.model else ""
        version = self.model.info.version if self.model else ""
        self._labels = {"model_name": name, "model_version": version}
        self._static_headers = [
            (b"content-type", b"application/json"),
            (b"x-model-name", name.encode("latin-1", "replace")),
            (b"x-model-version", version.encode("latin-1", "replace")),
            (b"x-served-by", self.served_by.encode("latin-1", "replace")),
        ]

    def start(self) -> None:
        """Begin loading the model in a background thread (called at ASGI startup)."""
        self._loop = asyncio.get_running_loop()
        # The prediction log thread encodes batches while requests are served. With the
        # default 5 ms GIL switch interval a request can wait that long for the GIL at
        # every switch; 0.5 ms bounds those stalls and costs nothing when one thread idles.
        sys.setswitchinterval(0.0005)
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self) -> None:
        try:
            model = load_model(
                self.config.model_uri,
                self.config.model_cache_dir,
                tracking_uri=self.config.tracking_uri,
                registry_uri=self.config.registry_uri,
            )
            try:
                predictor = Predictor(
                    model, fast_path=self.config.fast_path, extra_columns=self.config.extra_columns
                )
                predictor.warm_up()
                writer = self._make_writer(model)
            except BaseException:
                model.close()
                raise
        except BaseException as exc:
            if not isinstance(exc, ModelLoadError):
                exc = ModelLoadError(
                    f"Cannot load model {self.config.model_uri!r}: {type(exc).__name__}: {exc}"
                )
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._on_failed, exc)
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._on_loaded, model, predictor, writer)

    def _make_writer(self, model: LoadedModel) -> Any:
        if not self.config.log_sink:
            return None
        from mlops_tasks.serving.predlog import PredictionLogWriter

        writer = PredictionLogWriter(
            sink=self.config.log_sink,
            feature_names=model.column_names,
            model_name=model.info.name,
            model_version=model.info.version,
            served_by=self.served_by,
            fmt=self.config.log_format,
            flush_interval_s=self.config.log_flush_interval_s,
            retention_hours=self.config.log_retention_hours,
            s3_endpoint_url=self.config.s3_endpoint_url,
        )
        writer.start()
        return writer

    def _on_loaded(self, model: LoadedModel, predictor: Predictor, writer: Any) -> None:
        self.model, self.predictor, self.log_writer = model, predictor, writer
        self._set_headers()
        # Everything loaded so far lives as long as the process: keep it out of the
        # garbage collector's full passes, which would otherwise stall requests.
        gc.collect()
        gc.freeze()
        self.ready = True
        logger.info(
            "serving model name=%s version=%s run_id=%s from %s as %s (fast path: %s, prediction log: %s)",
            model.info.name,
            model.info.version,
            model.info.run_id,
            self.config.model_uri,
            self.served_by,
            predictor.fast_dtype is not None,
            self.config.log_sink or "off",
        )

    def _on_failed(self, exc: BaseException) -> None:
        self.load_error = exc
        logger.error("model not loaded: %s", exc)
        if self.on_fatal is not None:
            self.on_fatal()

    def shutdown(self) -> None:
        """Flush the prediction log and release the model (called at ASGI shutdown)."""
        if self._queue:
            self._flush()
        if self.log_writer is not None:
            self.log_writer.close()
            stats = self.log_writer.stats
            logger.info(
                "prediction log closed: %d rows written, %d dropped",
                stats.written_rows,
                stats.dropped_rows,
            )
        if self.model is not None:
            self.model.close()

    # -- transport-neutral request handling ----------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        headers: dict[bytes, bytes],
        body: bytes,
        body_error: InvalidInputError | None,
        respond: Respond,
    ) -> None:
        """Answer one request by calling ``respond(status, headers, body)`` (now or later).

        Used by both front ends (the built-in HTTP protocol and the ASGI adapter).

        Args:
            method: HTTP method.
            path: URL path without the query.
            headers: Request headers, lower-case names (at least ``content-type`` and
                ``x-request-id`` when sent).
            body: The whole body.
            body_error: Set when the body was refused while reading (e.g. 413).
            respond: Called exactly once with the answer.
        """
        if path == "/invocations":
            if method != "POST":
                return self._simple(respond, path, 405, {"error": "Use POST /invocations."})
            return self._invoke(headers, body, body_error, respond)
        if method not in ("GET", "HEAD"):
            return self._simple(respond, path, 405, {"error": f"Use GET {path}."})
        if path == "/ping":
            return self._simple(respond, path, 200, {"status": "alive"})
        if path == "/health":
            status, doc = self.health()
            return self._simple(respond, path, status, doc)
        if path == "/version":
            return self._simple(respond, path, 200, self.version_info())
        if path == "/metrics":
            self.metrics.request(path, 200)
            text = self.render_metrics().encode()
            return respond(200, _METRICS_HEADERS, text)
        return self._simple(respond, path, 404, {"error": f"No endpoint {path}."})

    def _simple(self, respond: Respond, endpoint: str, status: int, doc: Any) -> None:
        self.metrics.request(endpoint if status != 404 else "other", status)
        respond(status, self._static_headers, _json(doc))

    def _invoke(
        self,
        headers: dict[bytes, bytes],
        body: bytes,
        body_error: InvalidInputError | None,
        respond: Respond,
    ) -> None:
        started = time.perf_counter()
        request_id = _header_text(headers, b"x-request-id") or uuid.uuid4().hex
        call = _Call(
            request_id,
            started,
            respond,
            [*self._static_headers, (b"x-request-id", request_id.encode("latin-1"))],
            _caller(headers.get(CALLER_HEADER)),
        )
        call.variant = _header_text(headers, b"x-ab-variant")
        call.subject = _header_text(headers, b"x-subject-id")
        try:
            if body_error is not None:
                raise body_error
            if not self.ready or self.predictor is None:
                _, doc = self.health()
                raise InvalidInputError(f"Model not ready: {doc['detail']}", status=503)
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            call.parsed = self.predictor.parser.parse(body, content_type)
        except InvalidInputError as exc:
            self._answer_error(call, exc)
            return
        except Exception as exc:  # anything reading the body raises is the body's fault
            self._answer_error(call, _unreadable(exc))
            return
        self._enqueue(call)

    def _answer(self, call: _Call, predictions: np.ndarray) -> bool:
        """Send one request's predictions; False when they cannot be serialized."""
        try:
            out = b'{"predictions":' + _json(_jsonable(predictions)) + b"}"
        except Exception as exc:
            self._answer_error(call, exc)
            return False
        call.respond(200, call.headers, out)
        self.metrics.request(
            "/invocations",
            200,
            time.perf_counter() - call.started,
            call.parsed_input.n_rows,
        )
        return True

    def _answer_error(self, call: _Call, exc: BaseException) -> None:
        if isinstance(exc, InvalidInputError):
            status = exc.status
            doc: dict[str, Any] = {
                "error": str(exc),
                "error_code": _ERROR_CODES.get(status, "BAD_REQUEST"),
            }
            if exc.columns:
                doc["columns"] = exc.columns
            doc["request_id"] = call.request_id
        else:  # the server must never die on a request
            logger.error("request %s failed", call.request_id, exc_info=exc)
            status = 500
            doc = {
                "error": f"Internal error: {type(exc).__name__}: {exc}",
                "error_code": "INTERNAL_ERROR",
                "request_id": call.request_id,
            }
        call.respond(status, call.headers, _json(doc))
        self.metrics.request("/invocations", status, time.perf_counter() - call.started)

    # -- ASGI adapter -----------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one ASGI connection (``http`` and ``lifespan`` scopes)."""
        kind = scope["type"]
        if kind == "http":
            await self._asgi_http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _asgi_http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = {k.lower(): v for k, v in scope["headers"]}
        body, body_error = b"", None
        if scope["path"] == "/invocations" and scope["method"] == "POST":
            try:
                body = await self._read_body(headers, receive)
            except InvalidInputError as exc:
                body_error = exc
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] = loop.create_future()

        def respond(status: int, out_headers: list[tuple[bytes, bytes]], out: bytes) -> None:
            if not answer.done():
                answer.set_result((status, out_headers, out))

        self.handle(scope["method"], scope["path"], headers, body, body_error, respond)
        status, out_headers, out = await answer
        out_headers = [*out_headers, (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": out})

    def body_too_large(self) -> InvalidInputError:
        """The 413 error naming the body limit."""
        limit = self.config.max_body_bytes
        return InvalidInputError(
            f"Request body larger than the limit of {limit} bytes "
            f"({limit / 1024 / 1024:g} MB); send fewer rows per request.",
            status=413,
        )

    async def _read_body(self, headers: dict[bytes, bytes], receive: Any) -> bytes:
        limit = self.config.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None:
            try:
                if int(length) > limit:
                    raise self.body_too_large()
            except ValueError as exc:
                raise InvalidInputError("Bad Content-Length header.", status=400) from exc
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise InvalidInputError("Client disconnected.", status=400)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self.body_too_large()
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    # -- endpoints -------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        """``(status, body)`` of ``/health``: 503 until the model is ready."""
        if self.load_error is not None:
            return 503, {"status": "failed", "detail": str(self.load_error)}
        if not self.ready:
            return 503, {"status": "loading", "detail": "model is loading or warming up"}
        problems = []
        if self.log_writer is not None and self.log_writer.degraded:
            problems.append(f"prediction log: {self.log_writer.degraded}")
        if problems:
            return 200, {"status": "degraded", "detail": "; ".join(problems)}
        return 200, {"status": "ok"}

    def version_info(self) -> dict[str, Any]:
        """The ``/version`` document."""
        info = self.model.info if self.model else None
        return {
            "model_name": info.name if info else None,
            "model_version": info.version if info else None,
            "run_id": info.run_id if info else None,
            "model_uri": self.config.model_uri,
            "served_by": self.served_by,
            "server_version": self.version,
            "fast_path": bool(self.predictor and self.predictor.fast_dtype is not None),
        }

    def render_metrics(self) -> str:
        """The ``/metrics`` text."""
        stats = self.log_writer.stats if self.log_writer is not None else None
        extra = {
            "mlops_serve_ready": 1.0 if self.ready else 0.0,
            "mlops_serve_uptime_seconds": time.time() - self.started_at,
        }
        if self.log_writer is not None:
            extra["mlops_serve_prediction_log_pending_rows"] = float(self.log_writer.pending_rows)
        return self.metrics.render(self._labels, stats, extra)

    # -- micro-batching ----------------------------------------------------------------

    def _enqueue(self, call: _Call) -> None:
        if self.config.max_batch_rows <= 1:
            self._run_batch([call])
            return
        self._queue.append(call)
        self._queued_rows += call.parsed_input.n_rows
        if self._queued_rows >= self.config.max_batch_rows:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        queue, self._queue, self._queued_rows = self._queue, [], 0
        if not queue:
            return
        fast = [c for c in queue if c.parsed_input.matrix is not None]
        general = [c for c in queue if c.parsed_input.matrix is None]
        for group in (fast, general):
            if group:
                self._run_batch(group)

    def _run_batch(self, group: list[_Call]) -> None:
        predictor = self.predictor
        assert predictor is not None
        try:
            merged = predictor.combine([c.parsed_input for c in group])
            predictions = predictor.predict(merged)
        except Exception as exc:
            if len(group) == 1:
                self.metrics.predict_errors += 1
                self._answer_error(group[0], exc if not isinstance(exc, RecursionError) else _unreadable(exc))
                return
            # One bad request must not fail its neighbours: retry each alone.
            for call in group:
                self._run_batch([call])
            return
        self.metrics.batch_size.observe(len(predictions))
        offset = 0
        answered = []
        for call in group:
            end = offset + call.parsed_input.n_rows
            answered.append(self._answer(call, predictions[offset:end]))
            offset = end
        if self.log_writer is None:
            return
        if not all(answered):  # rare: log only the requests that got their answer
            keep = [c for c, ok in zip(group, answered, strict=True) if ok]
            if not keep:
                return
            merged = predictor.combine([c.parsed_input for c in keep])
            mask = np.repeat(answered, [c.parsed_input.n_rows for c in group])
            predictions = predictions[mask]
            group = keep
        # One log entry per batch: the writer repeats each id over its request's rows.
        ab = any(c.variant is not None or c.subject is not None for c in group)
        self.log_writer.append(
            [c.request_id for c in group],
            [time.time()] * len(group),
            merged.matrix if merged.matrix is not None else merged.columns,
            predictions,
            row_counts=[c.parsed_input.n_rows for c in group],
            callers=[c.caller for c in group],
            variants=[c.variant for c in group] if ab else None,
            subjects=[c.subject for c in group] if ab else None,
        )


def _caller(raw: bytes | None) -> str | None:
    """The caller name the router put in ``X-Mlops-Caller`` (None: absent or not a name)."""
    if not raw:
        return None
    text = raw.decode("latin-1")
    return text if len(text) <= 64 and text.isprintable() else None


def _unreadable(exc: BaseException) -> InvalidInputError:
    """The 400 for a body that broke the parser in an unforeseen way (never a 500)."""
    logger.warning("unreadable request body: %s: %s", type(exc).__name__, str(exc)[:200])
    kind = "nested too deeply" if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {exc}"
    return InvalidInputError(f"Cannot read the request body ({kind})."[:500], status=400)


_ERROR_CODES = {
    400: "BAD_REQUEST",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    431: "REQUEST_HEADER_FIELDS_TOO_LARGE",
    422: "INVALID_PARAMETER_VALUE",
    503: "NOT_READY",
}


def _jsonable(predictions: np.ndarray) -> Any:
    if (
        predictions.dtype.kind in "biuf"
        and predictions.ndim <= 2
        and predictions.flags.c_contiguous
        and predictions.dtype.isnative
    ):
        return predictions  # orjson serializes numeric arrays natively
    return predictions.tolist()
