"""A client's mistakes get a 4xx with a message, never a 5xx, from a real server on loopback.

One ``mlops-serve`` process serves a small numeric scikit-learn model saved to a local
folder (no registry), with a short request timeout and a small header limit. Every case
sends its bad request, checks the answer, then checks the server still answers a good one.
"""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pandas as pd
import pytest

from tests.test_serving import Server, call

COLUMNS = [f"x{i}" for i in range(3)]
GOOD = {"dataframe_split": {"columns": COLUMNS, "data": [[0.1, 0.2, 0.3]]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(50, 3)), columns=COLUMNS)
    model = LogisticRegression().fit(frame, (frame.sum(axis=1) > 0).astype(int))
    folder = tmp_path_factory.mktemp("hardening") / "model"
    mlflow.sklearn.save_model(model, str(folder), signature=infer_signature(frame, model.predict(frame)))
    srv = Server(
        [
            "--model-uri",
            str(folder),
            "--no-prediction-log",
            "--max-header-bytes",
            "8192",
            "--request-timeout",
            "1",
        ]
    ).wait_healthy()
    yield srv
    assert srv.stop() == 0


def _still_serves(port: int) -> None:
    status, _, raw = call(port, "POST", "/invocations", json.dumps(GOOD))
    assert status == 200 and len(json.loads(raw)["predictions"]) == 1


def _raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` (ignoring a reset while sending), read until the server closes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            sock.sendall(data)
        except OSError:
            pass
        out = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        sock.close()


BAD_BODIES = {
    "nested_beyond_the_parser_limit": (b"[" * 5000 + b"]" * 5000, "application/json", 400, "nested deeper"),
    "nested_inside_inputs": (
        b'{"inputs": {"x0": ' + b"[" * 900 + b"1" + b"]" * 900 + b"}}",
        "application/json",
        422,
        "x0",
    ),
    "nested_in_the_slow_parser": (
        b'{"a": NaN, "b": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        "application/json",
        400,
        "nested deeper",
    ),
    "latin1_bytes": (
        b'{"inputs": {"x0": ["caf\xe9"]}}',
        "application/json",
        400,
        "not valid UTF-8 (byte 0xe9 at position 23)",
    ),
    "utf16_with_bom": ('{"inputs": {}}'.encode("utf-16"), "application/json", 400, "not valid UTF-8"),
    "text_plain": (json.dumps(GOOD).encode(), "text/plain", 415, "application/json or text/csv"),
    "form_encoded": (b"a=1&b=2", "application/x-www-form-urlencoded", 415, "application/json or text/csv"),
    "json_in_latin1_charset": (json.dumps(GOOD).encode(), "application/json; charset=latin-1", 415, "UTF-8"),
    "csv_garbage": (b'"unclosed\n\x00,,\n', "text/csv", 4, ""),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_malformed_body_gets_a_4xx_with_a_message(server: Server, case: str) -> None:
    body, content_type, status, text = BAD_BODIES[case]
    got, _, raw = call(server.port, "POST", "/invocations", body, {"Content-Type": content_type})
    doc = json.loads(raw)
    assert (got // 100 == 4) if status == 4 else (got == status), (got, doc)
    assert text in doc["error"] and doc["request_id"]
    _still_serves(server.port)


def test_json_content_type_with_utf8_charset_and_csv_are_accepted(server: Server) -> None:
    status, _, _ = call(
        server.port,
        "POST",
        "/invocations",
        json.dumps(GOOD),
        {"Content-Type": "Application/JSON; charset=UTF-8"},
    )
    assert status == 200
    status, _, raw = call(
        server.port, "POST", "/invocations", b"x0,x1,x2\n1,2,3\n", {"Content-Type": "text/csv"}
    )
    assert status == 200 and len(json.loads(raw)["predictions"]) == 1


def test_a_two_megabyte_header_gets_431(server: Server) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * 1024 * 1024) + b"\r\n\r\n"
    out = _raw(server.port, head)
    assert out.startswith(b"HTTP/1.1 431 "), out[:200]
    assert b"8192 bytes" in out and b"connection: close" in out
    long_url = b"GET /ping?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _raw(server.port, long_url).startswith(b"HTTP/1.1 431 ")
    _still_serves(server.port)


def test_a_client_sending_slowly_gets_408_and_cannot_hold_the_server(server: Server) -> None:
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        started = time.monotonic()
        slow.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        _still_serves(server.port)  # others are answered meanwhile
        out = b""
        while chunk := slow.recv(65536):
            out += chunk
        assert out.startswith(b"HTTP/1.1 408 "), out
        assert b"1 s" in out
        assert silent.recv(65536).startswith(b"HTTP/1.1 408 ")  # a connection that never sends
        assert time.monotonic() - started < 8
    finally:
        slow.close()
        silent.close()
    _still_serves(server.port)


def test_client_mistakes_are_counted_as_4xx_not_5xx(server: Server) -> None:
    call(server.port, "POST", "/invocations", b"[" * 5000, {"Content-Type": "application/json"})
    text = call(server.port, "GET", "/metrics")[2].decode()
    statuses = {
        line.split('status="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("mlops_serve_requests_total{") and 'endpoint="/invocations"' in line
    }
    assert statuses and not any(s.startswith("5") for s in statuses), statuses
