"""The HAProxy router against a real haproxy process, and the pure pieces (guard, specs)."""

from __future__ import annotations

import http.client
import os
import stat
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_tasks.deploy.guard import MetricsSnapshot, judge, parse_metrics
from mlops_tasks.deploy.models import EndpointSpec, GuardLimits, RolloutSpec
from mlops_tasks.deploy.router import (
    MIRROR_LUA,
    RouterClient,
    RouterConfig,
    check_config,
    haproxy_binary,
    render_config,
    write_checked,
)
from mlops_tasks.errors import RouterConfigError, RouterError
from tests.conftest import free_port


def test_haproxy_is_installed():
    """The deploy tests need HAProxy: a missing binary fails the run instead of skipping."""
    path = haproxy_binary()
    out = subprocess.run([path, "-v"], capture_output=True, text=True, check=True).stdout
    assert "HAProxy version" in out


class _QuietServer(ThreadingHTTPServer):
    """HAProxy's health checks close connections early; a reset is not worth a traceback."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Backend:
    """A tiny HTTP server standing in for a model server: /health, /invocations, /metrics."""

    def __init__(self, name: str, healthy: bool = True) -> None:
        self.name, self.healthy, self.invocations = name, healthy, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Served-By", outer.name)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/health":
                    return self._send(200 if outer.healthy else 503, b"{}")
                return self._send(404, b"{}")

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.invocations += 1
                return self._send(200, b'{"predictions": [1]}')

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def haproxy(tmp_path):
    """A running haproxy with the endpoint template, two stand-in backends attached as blue."""
    backends = {"blue": _Backend("blue"), "green": _Backend("green")}
    lua = tmp_path / "mirror.lua"
    lua.write_text(MIRROR_LUA)
    port, preview = free_port(), free_port()
    cfg = RouterConfig(
        port=port,
        preview_port=preview,
        admin_socket=str(tmp_path / "admin.sock"),
        lua_path=str(lua),
        pidfile=str(tmp_path / "pid"),
        servers={"blue_1": ("127.0.0.1", backends["blue"].port)},
        weights={"blue": 100},
        check_interval_ms=100,
    )
    path = tmp_path / "haproxy.cfg"
    write_checked(path, render_config(cfg))
    log = open(tmp_path / "haproxy.log", "wb")
    proc = subprocess.Popen([haproxy_binary(), "-W", "-f", str(path)], stdout=log, stderr=subprocess.STDOUT)
    client = RouterClient(tmp_path / "admin.sock")
    deadline = time.monotonic() + 10
    while not ((tmp_path / "admin.sock").exists() and client.alive()):
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "haproxy.log").read_text()
        time.sleep(0.05)
    client.wait_up("blue", 1, 10)
    yield {
        "client": client,
        "port": port,
        "preview": preview,
        "backends": backends,
        "path": path,
        "tmp": tmp_path,
        "proc": proc,
    }
    proc.terminate()
    proc.wait(10)
    log.close()
    for b in backends.values():
        b.close()


def _served_by(port: int, n: int) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    out = []
    for _ in range(n):
        conn.request("POST", "/invocations", body=b"{}", headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        out.append(resp.getheader("X-Served-By"))
    conn.close()
    return out


def test_admin_socket_is_owner_only(haproxy):
    mode = stat.S_IMODE(os.stat(haproxy["tmp"] / "admin.sock").st_mode)
    assert mode == 0o600


def test_weights_move_traffic_on_one_keepalive_connection(haproxy):
    client, backends = haproxy["client"], haproxy["backends"]
    assert set(_served_by(haproxy["port"], 10)) == {"blue"}
    client.attach_slot("green", [("127.0.0.1", backends["green"].port)], 1)
    assert client.wait_up("green", 1, 10)
    assert set(_served_by(haproxy["port"], 10)) == {"blue"}  # attached with weight 0
    client.set_slot_weights({"blue": 50, "green": 50}, 1)
    assert set(_served_by(haproxy["port"], 20)) == {"blue", "green"}
    client.set_slot_weights({"blue": 0, "green": 100}, 1)
    assert set(_served_by(haproxy["port"], 10)) == {"green"}
    assert client.slot_weights(1) == {"blue": 0, "green": 100}


def test_preview_port_reaches_the_idle_slot_only(haproxy):
    client, backends = haproxy["client"], haproxy["backends"]
    client.attach_slot("green", [("127.0.0.1", backends["green"].port)], 1)
    client.set_preview("green", 1)
    client.wait_up("green", 1, 10)
    deadline = time.monotonic() + 10
    while not any(s.up for s in client.servers("preview") if s.name == "green_1"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert set(_served_by(haproxy["preview"], 5)) == {"green"}
    assert set(_served_by(haproxy["port"], 5)) == {"blue"}


def test_unhealthy_server_gets_no_traffic_even_with_weight(haproxy):
    client, backends = haproxy["client"], haproxy["backends"]
    backends["green"].healthy = False
    client.attach_slot("green", [("127.0.0.1", backends["green"].port)], 1)
    client.set_slot_weights({"blue": 50, "green": 50}, 1)
    deadline = time.monotonic() + 10
    while any(s.up for s in client.servers("live") if s.name == "green_1"):
        assert time.monotonic() < deadline, "HAProxy never marked the failing server DOWN"
        time.sleep(0.05)
    assert set(_served_by(haproxy["port"], 20)) == {"blue"}


def test_shadow_mirrors_copies_and_client_sees_only_live(haproxy):
    client, backends = haproxy["client"], haproxy["backends"]
    client.attach_slot("green", [("127.0.0.1", backends["green"].port)], 1)
    client.wait_up("green", 1, 10)
    client.set_shadow("green", 1)
    deadline = time.monotonic() + 10
    while not any(s.up for s in client.servers("shadow") if s.name == "green_1"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert set(_served_by(haproxy["port"], 30)) == {"blue"}
    # Mirroring is best effort (a copy whose connection fails is dropped, never retried,
    # so the client is never delayed): nearly every live request reaches green.
    deadline = time.monotonic() + 10
    while backends["green"].invocations < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backends["green"].invocations >= 27, f"green got {backends['green'].invocations} copies of 30"
    client.set_shadow(None, 1)
    time.sleep(0.3)
    before = backends["green"].invocations
    _served_by(haproxy["port"], 10)
    time.sleep(0.3)
    assert backends["green"].invocations == before


def test_refused_command_is_a_typed_error(haproxy):
    with pytest.raises(RouterError, match="refused"):
        haproxy["client"].set_weight("live", "purple_1", 10)
    with pytest.raises(RouterError, match="weight above 0"):
        haproxy["client"].set_slot_weights({"blue": 0, "green": 0}, 1)


def test_rejected_config_never_replaces_the_working_one(haproxy):
    path = haproxy["path"]
    good = path.read_text()
    with pytest.raises(RouterConfigError, match="rejected"):
        write_checked(path, good + "\nbackend broken\n    no-such-directive on\n")
    assert path.read_text() == good
    check_config(path)
    assert set(_served_by(haproxy["port"], 3)) == {"blue"}


def test_unreachable_socket_is_a_router_error(tmp_path):
    assert not RouterClient(tmp_path / "none.sock").alive()
    with pytest.raises(RouterError, match="does not answer"):
        RouterClient(tmp_path / "none.sock").info()


# -- pure pieces ----------------------------------------------------------------------------------

METRICS = """\
mlops_serve_requests_total{model_name="m",model_version="2",endpoint="/invocations",status="200"} 90
mlops_serve_requests_total{model_name="m",model_version="2",endpoint="/invocations",status="500"} 10
mlops_serve_requests_total{model_name="m",model_version="2",endpoint="/health",status="200"} 500
mlops_serve_request_duration_seconds_bucket{model_name="m",model_version="2",le="0.01"} 50
mlops_serve_request_duration_seconds_bucket{model_name="m",model_version="2",le="0.1"} 94
mlops_serve_request_duration_seconds_bucket{model_name="m",model_version="2",le="0.25"} 100
mlops_serve_request_duration_seconds_bucket{model_name="m",model_version="2",le="+Inf"} 100
mlops_serve_request_duration_seconds_count{model_name="m",model_version="2"} 100
"""


def test_guard_reads_invocations_only_and_judges_share_and_p95():
    snap = parse_metrics(METRICS)
    assert (snap.total, snap.errors_5xx, snap.count) == (100, 10, 100)
    assert snap.quantile_ms(0.95) == 250.0
    assert "5xx share" in judge(snap, GuardLimits(max_error_share=0.05)).breach
    assert "p95" in judge(snap, GuardLimits(max_error_share=0.2, max_p95_latency_ms=100)).breach
    assert judge(snap, GuardLimits(max_error_share=0.2, max_p95_latency_ms=300)).breach is None
    assert judge(snap, GuardLimits(max_error_share=0.0, min_requests=101)).breach is None
    delta = parse_metrics(METRICS) - MetricsSnapshot(total=50, errors_5xx=10, count=0)
    assert delta.error_share == 0.0


def test_rollout_steps_and_endpoint_ports():
    assert RolloutSpec(strategy="all_at_once").steps() == [100]
    assert RolloutSpec(strategy="canary", canary_percent=5).steps() == [5, 100]
    assert RolloutSpec(strategy="linear", linear_step_percent=30).steps() == [30, 60, 90, 100]
    assert RolloutSpec(strategy="shadow").steps() == []
    assert EndpointSpec(port=9000).preview == 9001
    with pytest.raises(ValueError):
        EndpointSpec(port=9000, preview_port=9000)
    with pytest.raises(ValueError):
        EndpointSpec(name="Bad Name")
