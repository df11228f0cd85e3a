"""Client certificates as the caller's identity, against a real HAProxy and a stand-in server.

The router is rendered from :func:`prepare_security` exactly as a local target renders it,
in front of a tiny HTTP server that answers with the caller header the router forwarded.
Two ways to run mutual TLS: keys on with ``client_cert_instead_of_key`` (a certificate
admits a caller without a key; a key sent anyway is checked), and no keys at all (the
certificate alone). The full endpoint (keys *and* certificates required, live CRL update,
reload) is tested in ``test_endpoint_security.py``.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509

from mlops_tasks.deploy.apikeys import new_key
from mlops_tasks.deploy.endpoint_security import prepare_security
from mlops_tasks.deploy.models import EndpointSecurity, EndpointSpec
from mlops_tasks.deploy.router import (
    MIRROR_LUA,
    RouterClient,
    RouterConfig,
    haproxy_binary,
    render_config,
    write_checked,
)
from tests.conftest import free_port
from tests.tls_support import CertAuthority


class _CallerEcho(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"caller": self.headers.get("X-Mlops-Caller")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture
def router(tmp_path: Path, request):
    """HAProxy with mutual TLS in mode ``request.param`` ("instead_of_key" or "cert_only")."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CallerEcho)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    ca, clients = CertAuthority(), CertAuthority("client CA")
    cert, key = ca.issue().write(tmp_path, "server")
    (tmp_path / "clients-ca.pem").write_bytes(clients.pem)
    (tmp_path / "clients.crl").write_bytes(clients.crl())
    api_key = new_key()
    (tmp_path / "keys.txt").write_text(f"svc-key {api_key}\n")
    keys = request.param == "instead_of_key"
    security = EndpointSecurity(
        api_keys=keys,
        api_keys_file=str(tmp_path / "keys.txt") if keys else None,
        rate_limit=3 if keys else 0,
        rate_period_s=60,
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        client_ca_file=str(tmp_path / "clients-ca.pem"),
        client_crl_file=str(tmp_path / "clients.crl"),
        client_cert_instead_of_key=keys,
    )
    spec = EndpointSpec(name="mtls-unit", port=free_port(), preview_port=free_port(), security=security)
    folder = tmp_path / "endpoint"
    layout = prepare_security(folder, spec)
    (folder / "mirror.lua").write_text(MIRROR_LUA)
    cfg = RouterConfig(
        port=spec.port,
        preview_port=spec.preview,
        admin_socket=str(folder / "admin.sock"),
        lua_path=str(folder / "mirror.lua"),
        servers={"blue_1": ("127.0.0.1", server.server_address[1])},
        weights={"blue": 100},
        security=layout,
    )
    write_checked(folder / "haproxy.cfg", render_config(cfg))
    log_path = folder / "router.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [haproxy_binary(), "-W", "-f", str(folder / "haproxy.cfg")], stdout=log, stderr=subprocess.STDOUT
        )
    client = RouterClient(folder / "admin.sock")
    deadline = time.monotonic() + 10
    while not ((folder / "admin.sock").exists() and client.alive()):
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    client.wait_up("blue", 1, 10)
    yield {
        "spec": spec,
        "client": client,
        "dir": tmp_path,
        "ca": ca,
        "clients": clients,
        "port": spec.port,
        "key": api_key,
        "cert": ca.client_context(tmp_path, clients.issue(cn="billing-service")),
        "bare": ca.client_context(tmp_path),
        "internal": ca.client_context(tmp_path),
        "folder": folder,
        "log": log_path,
    }
    proc.terminate()
    proc.wait(10)
    server.shutdown()


def _call(r, context: ssl.SSLContext, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPSConnection("127.0.0.1", r["port"], timeout=10, context=context)
    try:
        conn.request("POST", "/invocations", body=b"{}", headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


@pytest.mark.parametrize("router", ["instead_of_key"], indirect=True)
def test_a_certificate_admits_a_caller_without_a_key_when_so_configured(router) -> None:
    assert _call(router, router["cert"]) == (200, {"caller": "billing-service"})
    # a key sent anyway is checked, and it names the caller
    status, doc = _call(router, router["cert"], {"Authorization": f"Bearer {router['key']}"})
    assert (status, doc) == (200, {"caller": "svc-key"})
    assert _call(router, router["cert"], {"X-API-Key": new_key()})[0] == 401
    # the endpoint's rate limit applies per certificate CN (3 a minute here; 2 calls so far)
    statuses = [_call(router, router["cert"])[0] for _ in range(3)]
    assert statuses[0] == 200 and statuses[-1] == 429, statuses
    # the deploy tooling's own certificate works too
    tooling = router["internal"]
    tooling.load_cert_chain(str(router["folder"] / "tls" / "internal-client.pem"))
    assert _call(router, tooling) == (200, {"caller": "mlops-internal"})
    with pytest.raises((ssl.SSLError, OSError)):  # no certificate: refused at the handshake
        _call(router, router["bare"], {"X-API-Key": router["key"]})
    deadline = time.monotonic() + 5
    while "cert=billing-service" not in router["log"].read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "caller=billing-service cert=billing-service" in router["log"].read_text()


@pytest.mark.parametrize("router", ["cert_only"], indirect=True)
def test_without_keys_the_certificate_alone_names_the_caller(router) -> None:
    assert _call(router, router["cert"]) == (200, {"caller": "billing-service"})
    forged = {"X-Mlops-Caller": "someone-else"}
    assert _call(router, router["cert"], forged) == (200, {"caller": "billing-service"})


@pytest.mark.parametrize("router", ["cert_only"], indirect=True)
def test_a_second_client_ca_is_loaded_into_the_live_router_by_the_next_deployment(router) -> None:
    second = CertAuthority("second client CA")
    d, spec = router["dir"], router["spec"]
    (d / "clients-ca.pem").write_bytes((d / "clients-ca.pem").read_bytes() + second.pem)
    (d / "clients.crl").write_bytes((d / "clients.crl").read_bytes() + second.crl())
    newcomer = router["ca"].client_context(d, second.issue(cn="newcomer"), "newcomer")
    with pytest.raises((ssl.SSLError, OSError)):
        _call(router, newcomer)
    prepare_security(router["folder"], spec, router["client"].command)  # what a redeploy runs first
    assert _call(router, newcomer) == (200, {"caller": "newcomer"})  # no reload: set/commit ssl ca-file
    assert _call(router, router["cert"]) == (200, {"caller": "billing-service"})


@pytest.mark.parametrize("router", ["cert_only"], indirect=True)
def test_a_revoked_certificate_is_refused_on_a_connection_opened_before_the_crl_update(router) -> None:
    from mlops_tasks.deploy.client_certs import load_client_trust, write_crl

    d, spec = router["dir"], router["spec"]
    open_conn = http.client.HTTPSConnection("127.0.0.1", router["port"], timeout=10, context=router["cert"])
    open_conn.request("GET", "/ping")
    first = open_conn.getresponse()
    assert (first.status, json.loads(first.read())) == (200, {"caller": "billing-service"})
    serial = x509.load_pem_x509_certificate((d / "client.crt").read_bytes()).serial_number
    (d / "clients.crl").write_bytes(router["clients"].crl(revoked=(serial,), age_hours=0))
    write_crl(router["folder"], load_client_trust(spec.security, spec.name), router["client"].command)
    open_conn.request("GET", "/ping")  # the same keep-alive connection, verified before the update
    resp = open_conn.getresponse()
    assert resp.status == 403 and json.loads(resp.read())["error_code"] == "CERTIFICATE_REVOKED"
    open_conn.close()
    with pytest.raises((ssl.SSLError, OSError)):  # a new connection fails at the handshake
        _call(router, router["cert"])
