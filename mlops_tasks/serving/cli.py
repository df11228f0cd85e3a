r"""``mlops-serve``: run the model server as one process.

Every flag has an environment variable (the flag wins)::

    mlops-serve --model-uri models:/churn@champion --port 8080 \
        --instance-name blue --log-sink s3://ml-logs/churn
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from mlops_tasks.serving.app import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    ModelServerApp,
    ServerConfig,
    default_log_sink,
)
from mlops_tasks.serving.inputs import EXTRA_COLUMN_POLICIES

logger = logging.getLogger("mlops_tasks.serving")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mlops-serve`` (defaults read from the environment).

    Example:
        ```python
        args = build_parser().parse_args(["--model-uri", "/models/churn", "--port", "9000"])
        assert args.port == 9000
        ```
    """
    p = argparse.ArgumentParser(
        prog="mlops-serve",
        description="Serve an MLflow scikit-learn model over HTTP (MLflow scoring protocol).",
    )
    _add_server_arguments(p)
    _add_log_arguments(p)
    _add_runtime_arguments(p)
    return p


def _add_server_arguments(p: argparse.ArgumentParser) -> None:
    """Model, address, identity and request-size flags."""
    p.add_argument(
        "--model-uri",
        default=_env("MLOPS_MODEL_URI"),
        help="models:/name@alias, models:/name/version, runs:/... or a local MLflow "
        "model folder [MLOPS_MODEL_URI]",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking server or store that models:/ and runs:/ URIs are resolved in "
        "[MLFLOW_TRACKING_URI, else <MLOPS_STATE_DIR or ./.mlops>/mlflow.db]",
    )
    p.add_argument(
        "--registry-uri",
        default=None,
        help="MLflow model registry, when not the tracking store [MLFLOW_REGISTRY_URI]",
    )
    p.add_argument(
        "--extra-columns",
        choices=EXTRA_COLUMN_POLICIES,
        default=_env("MLOPS_SERVE_EXTRA_COLUMNS", "ignore"),
        help="request columns the model's signature does not name: ignore them (as MLflow's "
        "scoring server does) or reject the request with 422 [MLOPS_SERVE_EXTRA_COLUMNS, ignore]",
    )
    p.add_argument(
        "--host",
        default=_env("MLOPS_SERVE_HOST", "127.0.0.1"),
        help="interface to bind [MLOPS_SERVE_HOST, default 127.0.0.1]",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(_env("MLOPS_SERVE_PORT", "8080") or 8080),
        help="TCP port [MLOPS_SERVE_PORT, default 8080]",
    )
    p.add_argument(
        "--instance-name",
        default=_env("MLOPS_SERVE_INSTANCE"),
        help="slot/instance name for X-Served-By and the log [MLOPS_SERVE_INSTANCE, default hostname:port]",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(
            _env("MLOPS_SERVE_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES)) or DEFAULT_MAX_BODY_BYTES
        ),
        help="bodies larger than this get 413 [MLOPS_SERVE_MAX_BODY_BYTES, 10 MB]",
    )
    p.add_argument(
        "--max-header-bytes",
        type=int,
        default=int(
            _env("MLOPS_SERVE_MAX_HEADER_BYTES", str(DEFAULT_MAX_HEADER_BYTES)) or DEFAULT_MAX_HEADER_BYTES
        ),
        help="a request line plus headers larger than this gets 431 [MLOPS_SERVE_MAX_HEADER_BYTES, 32 KiB]",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=float(_env("MLOPS_SERVE_REQUEST_TIMEOUT_S", "30") or 30),
        help="a request not received completely within this many seconds gets 408 "
        "[MLOPS_SERVE_REQUEST_TIMEOUT_S, 30]",
    )


def _add_log_arguments(p: argparse.ArgumentParser) -> None:
    """Prediction-log flags."""
    p.add_argument(
        "--log-sink",
        default=_env("MLOPS_PREDICTION_LOG"),
        help="prediction log folder or s3://bucket/prefix [MLOPS_PREDICTION_LOG, "
        "default <MLOPS_STATE_DIR or ./.mlops>/prediction-log]",
    )
    p.add_argument(
        "--no-prediction-log",
        action="store_true",
        default=_env("MLOPS_PREDICTION_LOG_DISABLED", "") in ("1", "true", "yes"),
        help="do not log predictions [MLOPS_PREDICTION_LOG_DISABLED=1]",
    )
    p.add_argument(
        "--log-format",
        choices=("parquet", "jsonl"),
        default=_env("MLOPS_PREDICTION_LOG_FORMAT", "parquet"),
        help="prediction log file format [MLOPS_PREDICTION_LOG_FORMAT, parquet]",
    )
    p.add_argument(
        "--log-flush-interval",
        type=float,
        default=float(_env("MLOPS_PREDICTION_LOG_FLUSH_S", "2") or 2),
        help="seconds between log flushes [MLOPS_PREDICTION_LOG_FLUSH_S, 2]",
    )
    p.add_argument(
        "--log-retention-hours",
        type=float,
        default=float(_env("MLOPS_PREDICTION_LOG_RETENTION_HOURS", "720") or 720),
        help="delete log partitions older than this, 0 keeps all [MLOPS_PREDICTION_LOG_RETENTION_HOURS, 720]",
    )
    p.add_argument(
        "--s3-endpoint-url",
        default=_env("MLOPS_S3_ENDPOINT_URL"),
        help="S3 endpoint for an s3:// log sink [MLOPS_S3_ENDPOINT_URL]",
    )


def _add_runtime_arguments(p: argparse.ArgumentParser) -> None:
    """Batching, model cache, HTTP front end, shutdown and logging flags."""
    p.add_argument(
        "--max-batch-rows",
        type=int,
        default=int(_env("MLOPS_SERVE_MAX_BATCH_ROWS", "4096") or 4096),
        help="rows per micro-batched predict call at most, 1 disables batching "
        "[MLOPS_SERVE_MAX_BATCH_ROWS, 4096]",
    )
    p.add_argument(
        "--no-fast-path", action="store_true", help="always build a DataFrame, even for numeric models"
    )
    p.add_argument(
        "--model-cache-dir",
        default=_env("MLOPS_MODEL_CACHE_DIR"),
        help="download registry models here (default: a temporary folder)",
    )
    p.add_argument(
        "--graceful-timeout", type=float, default=30.0, help="seconds shutdown waits for requests in flight"
    )
    p.add_argument(
        "--http",
        choices=("builtin", "uvicorn"),
        default=_env("MLOPS_SERVE_HTTP", "builtin"),
        help="HTTP front end: the built-in httptools protocol (fastest) or uvicorn "
        "running the ASGI app [MLOPS_SERVE_HTTP, builtin]",
    )
    p.add_argument(
        "--keep-alive-timeout",
        type=float,
        default=float(_env("MLOPS_SERVE_KEEP_ALIVE_S", "75") or 75),
        help="close keep-alive connections idle this long, in seconds [MLOPS_SERVE_KEEP_ALIVE_S, 75]",
    )
    p.add_argument(
        "--log-level",
        default=_env("MLOPS_SERVE_LOG_LEVEL", "info"),
        help="server log level [MLOPS_SERVE_LOG_LEVEL, info]",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Turn parsed CLI arguments into a :class:`ServerConfig`.

    Example:
        ```python
        cfg = config_from_args(build_parser().parse_args(["--model-uri", "/m"]))
        assert cfg.model_uri == "/m"
        ```
    """
    sink = None if args.no_prediction_log else (args.log_sink or default_log_sink())
    return ServerConfig(
        model_uri=args.model_uri,
        host=args.host,
        port=args.port,
        instance_name=args.instance_name,
        max_body_bytes=args.max_body_bytes,
        log_sink=sink,
        log_format=args.log_format,
        log_flush_interval_s=args.log_flush_interval,
        log_retention_hours=args.log_retention_hours,
        s3_endpoint_url=args.s3_endpoint_url,
        max_batch_rows=args.max_batch_rows,
        fast_path=not args.no_fast_path,
        model_cache_dir=args.model_cache_dir,
        graceful_timeout_s=args.graceful_timeout,
        keep_alive_timeout_s=args.keep_alive_timeout,
        extra_columns=args.extra_columns,
        tracking_uri=args.tracking_uri,
        registry_uri=args.registry_uri,
        max_header_bytes=args.max_header_bytes,
        request_timeout_s=args.request_timeout,
    )


def serve(config: ServerConfig, log_level: str = "info", http: str = "builtin") -> int:
    """Run the server in this process until SIGTERM/SIGINT; return the exit code.

    On SIGTERM or SIGINT the server stops accepting connections, finishes the
    requests in flight, flushes the prediction log and returns 0. It returns 1 when
    the model cannot be loaded (the error is logged) or the port cannot be bound.

    Args:
        config: Server settings.
        log_level: Logging level of the server's own messages.
        http: ``builtin`` (httptools protocol, one write per answer) or ``uvicorn``
            (the same app through uvicorn's ASGI server).

    Returns:
        The process exit code.

    Example:
        ```python
        from mlops_tasks.serving import ServerConfig, serve
        raise SystemExit(serve(ServerConfig(model_uri="/models/churn", port=8080,
                                            log_sink="/var/log/predictions")))
        ```
    """
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        loop = "asyncio"
    app = ModelServerApp(config)
    if http == "builtin":
        import asyncio

        from mlops_tasks.serving.httpserver import serve_forever

        factory = None
        if loop == "uvloop":
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            listened = runner.run(
                serve_forever(
                    app, config.host, config.port, config.graceful_timeout_s, config.keep_alive_timeout_s
                )
            )
        return _exit_code(app, listened, config)
    import uvicorn

    grace = config.graceful_timeout_s  # seconds, float: uvicorn passes it on to asyncio.wait_for
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop=loop,
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        proxy_headers=False,
        backlog=2048,
        timeout_graceful_shutdown=grace,  # type: ignore[arg-type]  # uvicorn says int; wait_for takes float
        timeout_keep_alive=int(max(1, config.keep_alive_timeout_s)),
        h11_max_incomplete_event_size=64 * 1024,
    )
    server = uvicorn.Server(uv_config)

    def fatal() -> None:
        server.should_exit = True

    app.on_fatal = fatal
    # uvicorn re-raises the signal that stopped it once it is done; with these no-op
    # handlers that re-raise is harmless and a graceful stop exits 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _exit_code(app, server.started, config)


def _exit_code(app: ModelServerApp, listened: bool, config: ServerConfig) -> int:
    if app.load_error is not None:
        print(f"mlops-serve: error: {app.load_error}", file=sys.stderr)
        return 1
    if not listened:
        print(f"mlops-serve: error: could not listen on {config.host}:{config.port}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mlops-serve``.

    Example:
        ```python
        main(["--model-uri", "models:/churn@champion", "--port", "8080"])
        ```
    """
    # MLflow (imported only to resolve registry URIs) sends no usage telemetry: the host
    # serving a model may be offline, and a failed send logs an error line.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    args = build_parser().parse_args(argv)
    if not args.model_uri:
        build_parser().error("--model-uri (or MLOPS_MODEL_URI) is required")
    return serve(config_from_args(args), log_level=args.log_level, http=args.http)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
