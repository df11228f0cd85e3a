"""The A/B split of the HAProxy router against a real haproxy process and stand-in servers."""

from __future__ import annotations

import http.client
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_tasks.deploy.haproxy.config import AB_MAP_DEFAULT, with_server_state
from mlops_tasks.deploy.models import AbSplit
from mlops_tasks.deploy.router import (
    MIRROR_LUA,
    RouterClient,
    RouterConfig,
    haproxy_binary,
    render_config,
    write_checked,
)
from tests.conftest import free_port


class _Backend:
    """Answers /health and /invocations; echoes the X-Ab-Variant header it was sent."""

    def __init__(self, name: str) -> None:
        self.name, self.seen = name, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # one write per answer (no Nagle / delayed-ACK stalls)

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Served-By", outer.name)
                self.send_header("X-Seen-Variant", self.headers.get("X-Ab-Variant", ""))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200 if self.path == "/health" else 404, b"{}")

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append(self.headers.get("X-Ab-Variant"))
                self._send(200, b'{"predictions": [1]}')

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass

        self.server = Quiet(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("abrouter")
    backends = {"blue": _Backend("blue"), "green": _Backend("green")}
    (tmp / "mirror.lua").write_text(MIRROR_LUA)
    (tmp / "ab.map").write_text(AB_MAP_DEFAULT)
    port = free_port()
    cfg = RouterConfig(
        port=port,
        preview_port=free_port(),
        admin_socket=str(tmp / "admin.sock"),
        lua_path=str(tmp / "mirror.lua"),
        ab_map=str(tmp / "ab.map"),
        pidfile=str(tmp / "pid"),
        servers={"blue_1": ("127.0.0.1", backends["blue"].port)},
        weights={"blue": 100},
        check_interval_ms=100,
    )
    write_checked(tmp / "haproxy.cfg", with_server_state(render_config(cfg), str(tmp / "server-state")))
    log = open(tmp / "haproxy.log", "wb")
    proc = subprocess.Popen([haproxy_binary(), "-W", "-f", str(tmp / "haproxy.cfg")], stdout=log, stderr=log)
    client = RouterClient(tmp / "admin.sock", state_file=tmp / "server-state")
    deadline = time.monotonic() + 10
    while not ((tmp / "admin.sock").exists() and client.alive()):
        assert proc.poll() is None and time.monotonic() < deadline, (tmp / "haproxy.log").read_text()
        time.sleep(0.05)
    client.attach_slot("green", [("127.0.0.1", backends["green"].port)], 1)
    assert client.wait_up("blue", 1, 10) and client.wait_up("green", 1, 10)
    yield {"client": client, "port": port, "backends": backends, "tmp": tmp, "proc": proc}
    proc.terminate()
    proc.wait(10)
    log.close()
    for b in backends.values():
        b.close()


def _post(port: int, n: int, subject: str | None = None) -> list[tuple[int, str, str, str]]:
    """``n`` requests on one keep-alive connection: (status, served by, X-Variant, variant the server saw)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    out = []
    headers = {"Content-Type": "application/json"}
    if subject is not None:
        headers["X-Subject-Id"] = subject
    for _ in range(n):
        conn.request("POST", "/invocations", body=b"{}", headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append(
            (resp.status, resp.getheader("X-Served-By", ""), resp.getheader("X-Variant", ""),
             resp.getheader("X-Seen-Variant", ""))
        )  # fmt: skip
    conn.close()
    return out


def _wait_ab(client: RouterClient) -> None:
    deadline = time.monotonic() + 10
    while not all(s.up for s in client.servers() if s.backend.startswith("ab_")):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_sticky_split_holds_per_subject_and_splits_exactly(router):
    client, port = router["client"], router["port"]
    split = AbSplit(mode="sticky", percent_a=30, colors={"A": "blue", "B": "green"})
    client.set_split(split)
    _wait_ab(client)
    assert client.split() == split
    colors = {"A": "blue", "B": "green"}
    counts = {"A": 0, "B": 0}
    for i in range(200):
        subject = f"rider-{i}"
        answers = _post(port, 3, subject)
        expected = split.variant_of(subject)
        assert {a[2] for a in answers} == {expected}, subject  # the answer names the variant
        assert {a[3] for a in answers} == {expected}  # the server was told it
        assert {a[1] for a in answers} == {colors[expected]}  # and it served it
        counts[expected] += 1
    buckets = [AbSplit.bucket_of(f"rider-{i}") for i in range(200)]
    assert counts["A"] == sum(b < 30 for b in buckets)  # exact: the split is the hash
    assert 40 <= counts["A"] <= 80
    # a request without the subject header goes to the champion
    assert {a[1:3] for a in _post(port, 5)} == {("blue", "A")}
    # the map file holds the split, so a reload keeps it
    assert "mode sticky" in (router["tmp"] / "ab.map").read_text()
    router["proc"].send_signal(signal.SIGUSR2)
    time.sleep(1.0)
    _wait_ab(client)
    assert client.split() == split
    assert {a[2] for a in _post(port, 3, "rider-1")} == {split.variant_of("rider-1")}


def test_per_request_split_uses_both_and_off_restores_weights(router):
    client, port = router["client"], router["port"]
    client.set_split(AbSplit(mode="request", percent_a=50, colors={"A": "blue", "B": "green"}))
    _wait_ab(client)
    answers = _post(port, 200, "same-subject")
    share_b = sum(a[2] == "B" for a in answers) / len(answers)
    assert 0.3 < share_b < 0.7
    assert all((a[1], a[2]) in {("blue", "A"), ("green", "B")} for a in answers)
    client.set_split(None)
    assert client.split() is None
    assert {a[1:3] for a in _post(port, 10, "x")} == {("blue", "")}  # weights again: blue 100
    assert "mode off" in (router["tmp"] / "ab.map").read_text()


def test_a_dead_variant_is_never_replaced_by_the_other(router):
    client, port = router["client"], router["port"]
    split = AbSplit(mode="sticky", percent_a=50, colors={"A": "blue", "B": "green"})
    client.set_split(split)
    _wait_ab(client)
    a_subject = next(f"s{i}" for i in range(100) if split.variant_of(f"s{i}") == "A")
    b_subject = next(f"s{i}" for i in range(100) if split.variant_of(f"s{i}") == "B")
    client.set_state("ab_green", "green_1", "maint")  # B's only server gone
    try:
        assert {a[0] for a in _post(port, 5, b_subject)} == {503}
        assert {a[:3] for a in _post(port, 5, a_subject)} == {(200, "blue", "A")}
    finally:
        client.set_state("ab_green", "green_1", "ready")
        client.set_split(None)
