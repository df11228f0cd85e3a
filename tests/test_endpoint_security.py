"""A secured endpoint for real: HAProxy with TLS, API keys and rate limits, a model server, on loopback.

One local endpoint (one model server, one HAProxy) serves a registered version with TLS
(certificate from a CA made here), keys from a file, a per-key rate limit and mutual TLS
(client certificates from a second CA, with a revocation list) required as well. The tests
check the handshake, every status a caller can get, the caller in the prediction log, key
issue and revocation and a certificate rotation under a non-retrying keep-alive load with
zero failed requests, a reload keeping every runtime change, and that no key or private
key is readable by others or written where it should not be.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import stat
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mlops_tasks.deploy import (
    EndpointSpec,
    RolloutSpec,
    deploy_blue_green,
    describe_deployment,
    stop_endpoint,
)
from mlops_tasks.deploy.access import (
    describe_security,
    issue_api_key,
    list_api_keys,
    revoke_api_key,
    rotate_certificate,
    update_client_crl,
)
from mlops_tasks.deploy.apikeys import ISSUED, REVOKED, new_key
from mlops_tasks.deploy.models import EndpointSecurity
from mlops_tasks.deploy.targets import get_target
from mlops_tasks.errors import EndpointSecurityError
from tests.conftest import free_port
from tests.deploy_support import LoadClient, body_for, features, make_pipeline, register_version
from tests.tls_support import CertAuthority, served_serial, write_keys_file

FAST = RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0, load_timeout_s=120)
RATE = 40  # per key per second: above what the tests send, except the rate-limit test's own key


@pytest.fixture(scope="module")
def secured(mlflow_config, tmp_path_factory):
    from mlops_tasks.demo import TARGET, make_churn_data
    from mlops_tasks.settings import resolve_mlflow_config
    from mlops_tasks.tracking import ensure_experiment
    from tests.mlflow_support import fluent_mlflow

    folder = tmp_path_factory.mktemp("secured")
    frame = make_churn_data(400, seed=5)
    x, y = features(frame), frame[TARGET]
    name = f"sec-{os.getpid()}"
    resolved = resolve_mlflow_config(mlflow_config)
    with fluent_mlflow(resolved) as client:
        version = register_version(
            client, ensure_experiment(client, resolved), name, make_pipeline().fit(x, y), x
        )
    ca = CertAuthority()
    cert, key = ca.issue().write(folder, "server")
    clients_ca = CertAuthority("mlops test client CA")
    (folder / "clients-ca.pem").write_bytes(clients_ca.pem)
    (folder / "clients.crl").write_bytes(clients_ca.crl())
    keys = {"svc-a": new_key(), "svc-b": new_key()}
    keys_file = write_keys_file(folder, keys)
    security = EndpointSecurity(
        api_keys=True,
        api_keys_file=str(keys_file),
        rate_limit=RATE,
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        http_redirect_port=free_port(),
        client_ca_file=str(folder / "clients-ca.pem"),
        client_crl_file=str(folder / "clients.crl"),
    )
    spec = EndpointSpec(
        name=f"secured-{os.getpid()}", port=free_port(), preview_port=free_port(), security=security
    )
    record = deploy_blue_green(
        name,
        version,
        endpoint=spec,
        rollout=FAST,
        target="local",
        smoke_rows=x.tail(20),
        mlflow_config=mlflow_config,
    )
    assert record.outcome == "succeeded", record.error
    yield {
        "spec": spec,
        "keys": keys,
        "ca": ca,
        "ctx": ca.client_context(folder, clients_ca.issue(cn="svc-cert")),
        "clients_ca": clients_ca,
        "folder": folder,
        "bodies": [body_for(x.iloc[[i]]) for i in range(50)],
        "model": name,
        "version": version,
        "x": x,
        "config": mlflow_config,
    }
    stop_endpoint(spec.name)


def _call(
    s, path="/invocations", headers=None, body=None, port=None, tls=True, method=None
) -> tuple[int, dict[str, str], bytes]:
    port = port or s["spec"].port
    conn = (
        http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=s["ctx"])
        if tls
        else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    )
    try:
        body = s["bodies"][0] if body is None and path == "/invocations" else body
        conn.request(
            method or ("POST" if body else "GET"),
            path,
            body=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _load(s) -> LoadClient:
    """4 keep-alive TLS connections of key svc-a at 8 requests/s each, never retrying."""
    return LoadClient(
        "127.0.0.1",
        s["spec"].port,
        s["bodies"],
        connections=4,
        rate=8,
        headers=_bearer(s["keys"]["svc-a"]),
        ssl_context=s["ctx"],
    )


def test_tls_handshake_is_tls12_or_later_and_plain_http_is_refused(secured) -> None:
    assert served_serial("127.0.0.1", secured["spec"].port, secured["ctx"]) > 0
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cadata=secured["ca"].pem.decode())
    old.load_cert_chain(str(secured["folder"] / "client.crt"), str(secured["folder"] / "client.key"))
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, OSError)):
        served_serial("127.0.0.1", secured["spec"].port, old)
    with pytest.raises((http.client.HTTPException, OSError)):
        _call(secured, tls=False, headers=_bearer(secured["keys"]["svc-a"]))


def test_statuses_a_caller_can_get(secured) -> None:
    key = secured["keys"]["svc-a"]
    status, hdrs, raw = _call(secured)
    assert status == 401 and hdrs["www-authenticate"] == 'Bearer realm="mlops"'
    assert json.loads(raw)["error_code"] == "UNAUTHENTICATED"
    status, hdrs, _ = _call(secured, headers=_bearer(new_key()))
    assert status == 401 and 'error="invalid_token"' in hdrs["www-authenticate"]
    for wrong_header in ({"Authorization": key}, {"X-Api-Token": key}, {"Authorization": f"Basic {key}"}):
        assert _call(secured, headers=wrong_header)[0] == 401, wrong_header
    status, hdrs, raw = _call(secured, headers=_bearer(key))
    assert status == 200 and len(json.loads(raw)["predictions"]) == 1
    assert _call(secured, headers={"X-API-Key": key})[0] == 200
    assert _call(secured, headers={"X-API-Key": key}, body=b"{", method="POST")[0] == 400
    # the preview port that smoke tests use is protected the same way
    assert _call(secured, port=secured["spec"].preview)[0] == 401
    assert _call(secured, path="/ping", port=secured["spec"].preview, headers=_bearer(key))[0] in (200, 503)


def test_plain_http_port_redirects_and_refuses_a_key(secured) -> None:
    port = secured["spec"].security.http_redirect_port
    status, hdrs, raw = _call(secured, port=port, tls=False, headers=_bearer(secured["keys"]["svc-b"]))
    assert status == 403 and json.loads(raw)["error_code"] == "KEY_OVER_PLAIN_HTTP"
    status, hdrs, _ = _call(secured, path="/version", port=port, tls=False)
    assert status == 308 and hdrs["location"] == f"https://127.0.0.1:{secured['spec'].port}/version"
    log = get_target("local", secured["spec"]).folder / "logs" / "router.log"
    deadline = time.monotonic() + 5
    while "exposure=key-over-plain-http" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "exposure=key-over-plain-http" in log.read_text()


def test_rate_limit_gives_429_with_retry_after_and_spares_other_keys(secured) -> None:
    limited = issue_api_key(secured["spec"].name, "burst", rate_limit=3)
    statuses = [_call(secured, path="/ping", headers=_bearer(limited))[0] for _ in range(8)]
    assert statuses.count(429) >= 3 and 200 in statuses, statuses
    status, hdrs, raw = _call(secured, path="/ping", headers=_bearer(limited))
    assert status == 429 and hdrs["retry-after"] == "2" and json.loads(raw)["error_code"] == "RATE_LIMITED"
    assert _call(secured, path="/ping", headers=_bearer(secured["keys"]["svc-a"]))[0] == 200
    time.sleep(2.1)
    assert _call(secured, path="/ping", headers=_bearer(limited))[0] == 200
    revoke_api_key(secured["spec"].name, "burst")


def test_an_expired_key_is_refused_by_the_router_itself(secured) -> None:
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    key = issue_api_key(secured["spec"].name, "short-lived", expires=soon)
    assert _call(secured, path="/ping", headers=_bearer(key))[0] == 200
    time.sleep(2.5)
    status, hdrs, _ = _call(secured, path="/ping", headers=_bearer(key))
    assert status == 401 and 'error="invalid_token"' in hdrs["www-authenticate"]
    from mlops_tasks.deploy.access import expire_api_keys

    events: list[str] = []
    gone = expire_api_keys(secured["spec"].name, emit=lambda e, p: events.append(p["reason"]))
    assert gone in ([], ["short-lived"])  # the endpoint's watchdog may have expired it first
    assert events == ["expired"] * len(gone)
    assert "short-lived" not in {k.name for k in list_api_keys(secured["spec"].name)}


def test_caller_is_logged_by_name_never_the_key_and_cannot_be_forged(secured) -> None:
    from mlops_tasks.serving import read_prediction_log

    key = secured["keys"]["svc-b"]
    headers = {**_bearer(key), "X-Mlops-Caller": "someone-else", "X-Request-Id": "caller-check"}
    assert _call(secured, headers=headers)[0] == 200
    sink = get_target("local", secured["spec"]).folder / "prediction-log"
    deadline = time.monotonic() + 10
    rows = None
    while time.monotonic() < deadline:
        log = read_prediction_log(str(sink)) if sink.exists() else None
        if log is not None and len(log) and (log["request_id"] == "caller-check").any():
            rows = log[log["request_id"] == "caller-check"]
            break
        time.sleep(0.3)
    assert rows is not None and rows["caller"].tolist() == ["svc-b"]
    smoke = log[log["request_id"].str.startswith("mlops-")] if "request_id" in log else log
    assert set(log["caller"].dropna()) <= {"svc-a", "svc-b", "mlops-internal"}
    assert smoke is not None


def test_issue_and_revoke_under_load_with_zero_failed_requests(secured) -> None:
    name = secured["spec"].name
    events: list[tuple[str, dict]] = []
    with _load(secured) as load:
        load.wait_answers(20)
        fresh = issue_api_key(name, "svc-new", emit=lambda e, p: events.append((e, p)))
        assert _call(secured, headers=_bearer(fresh))[0] == 200
        revoke_api_key(name, "svc-new", emit=lambda e, p: events.append((e, p)))
        assert _call(secured, headers=_bearer(fresh))[0] == 401
        load.wait_answers(len(load.result.answers) + 20)
    result = load.result
    assert result.failed == 0, result.failures[:3]
    assert result.answers and {a.status for a in result.answers} == {200}
    assert [e for e, _ in events] == [ISSUED, REVOKED]
    assert events[0][1]["name"] == "svc-new" and events[0][1]["actor"] and events[1][1]["time"]


def test_certificate_rotation_under_load_and_a_reload_keeps_runtime_changes(secured) -> None:
    spec = secured["spec"]
    before = served_serial("127.0.0.1", spec.port, secured["ctx"])
    fresh = secured["ca"].issue()
    cert, key = fresh.write(secured["folder"], "rotated")
    later = issue_api_key(spec.name, "svc-later")
    revoke_api_key(spec.name, "svc-b")
    with _load(secured) as load:
        load.wait_answers(20)
        rotate_certificate(spec.name, cert_file=str(cert), key_file=str(key))
        assert served_serial("127.0.0.1", spec.port, secured["ctx"]) == fresh.serial != before
        load.wait_answers(len(load.result.answers) + 20)
    assert load.result.failed == 0, load.result.failures[:3]
    target = get_target("local", spec)
    target.reload_router()
    assert served_serial("127.0.0.1", spec.port, secured["ctx"]) == fresh.serial
    assert _call(secured, headers=_bearer(later))[0] == 200
    assert _call(secured, headers=_bearer(secured["keys"]["svc-b"]))[0] == 401
    described = describe_deployment(spec.name)
    keys = {k.name: k for k in described.api_keys}
    assert "svc-b" not in keys and keys["svc-later"].source == "issued"
    # describe shows the certificate the router serves now: the rotated one
    served = x509.load_pem_x509_certificate(cert.read_bytes())
    assert described.security is not None and described.security.tls and described.security.api_keys
    assert described.security.certificate_sha256 == served.fingerprint(hashes.SHA256()).hex()
    assert described.security.certificate_not_after == served.not_valid_after_utc
    assert keys["svc-a"].requests == 0 or keys["svc-a"].last_used  # the table restarts with the router
    used = {k.name: k for k in list_api_keys(spec.name)}
    assert used["svc-later"].requests >= 1 and used["svc-later"].last_used


def test_client_certificates_are_checked_at_the_handshake_on_both_ports(secured) -> None:
    key = _bearer(secured["keys"]["svc-a"])
    folder = secured["folder"]
    bare = secured["ca"].client_context(folder)
    stranger = secured["ca"].client_context(folder, CertAuthority("another CA").issue(cn="svc-a"), "stranger")
    for port in (secured["spec"].port, secured["spec"].preview):
        for context in (bare, stranger):  # no certificate; a certificate from another CA
            with pytest.raises((ssl.SSLError, OSError)):
                _call({**secured, "ctx": context}, path="/ping", port=port, headers=key)
        assert _call(secured, path="/ping", port=port, headers=key)[0] in (200, 503)


def test_a_revoked_client_certificate_is_refused_after_a_live_crl_update_and_after_a_reload(
    secured,
) -> None:
    spec, folder, clients_ca = secured["spec"], secured["folder"], secured["clients_ca"]
    doomed = clients_ca.issue(cn="svc-doomed")
    doomed_ctx = secured["ca"].client_context(folder, doomed, "doomed")
    key = _bearer(secured["keys"]["svc-a"])
    assert _call({**secured, "ctx": doomed_ctx}, headers=key)[0] == 200
    revoked_before = describe_security(spec.name).revoked_certificates
    with _load(secured) as load:
        load.wait_answers(20)
        (folder / "clients.crl").write_bytes(clients_ca.crl(revoked=(doomed.serial,), age_hours=0))
        assert update_client_crl(spec.name) == 1
        with pytest.raises((ssl.SSLError, OSError)):
            _call({**secured, "ctx": doomed_ctx}, headers=key)
        view = describe_security(spec.name)  # what the router holds now
        assert view.client_certificates and view.revocation_list and view.client_cas
        assert view.revoked_certificates == revoked_before + 1 and view.crl_next_update is not None
        load.wait_answers(len(load.result.answers) + 20)
    assert load.result.failed == 0, load.result.failures[:3]
    assert {a.status for a in load.result.answers} == {200}
    get_target("local", spec).reload_router()
    with pytest.raises((ssl.SSLError, OSError)):
        _call({**secured, "ctx": doomed_ctx}, headers=key)
    assert _call(secured, headers=key)[0] == 200


@pytest.mark.parametrize(
    "mistake",
    [
        "mismatched_key",
        "expired_cert",
        "missing_key_file",
        "unreadable_key_file",
        "missing_client_ca",
        "client_ca_not_a_certificate",
        "crl_of_another_ca",
    ],
)
def test_configuration_mistakes_are_refused_and_the_live_endpoint_keeps_serving(
    secured, mistake: str
) -> None:
    spec, folder = secured["spec"], secured["folder"]
    sec = spec.security
    if mistake == "mismatched_key":
        other = secured["ca"].issue().write(folder, "other")[1]
        sec = sec.model_copy(update={"tls_key_file": str(other)})
    elif mistake == "expired_cert":
        cert, key = secured["ca"].issue(days=-1, start_days=-5).write(folder, "expired")
        sec = sec.model_copy(update={"tls_cert_file": str(cert), "tls_key_file": str(key)})
    elif mistake == "missing_key_file":
        sec = sec.model_copy(update={"api_keys_file": str(folder / "nope.txt")})
    elif mistake == "unreadable_key_file":
        sec = sec.model_copy(update={"api_keys_file": str(folder)})  # a folder cannot be read as a file
    elif mistake == "missing_client_ca":
        sec = sec.model_copy(update={"client_ca_file": str(folder / "no-ca.pem")})
    elif mistake == "client_ca_not_a_certificate":
        sec = sec.model_copy(update={"client_ca_file": str(folder / "client.key")})
    else:
        (folder / "stranger.crl").write_bytes(CertAuthority("another CA").crl())
        sec = sec.model_copy(update={"client_crl_file": str(folder / "stranger.crl")})
    bad = spec.model_copy(update={"security": sec})
    with pytest.raises(EndpointSecurityError) as info:
        get_target("local", bad).ensure_router({}, None)
    assert {
        "mismatched_key": "does not match",
        "expired_cert": "expired",
        "missing_key_file": "does not exist",
        "unreadable_key_file": "cannot be read",
        "missing_client_ca": "does not exist",
        "client_ca_not_a_certificate": "holds no PEM certificate",
        "crl_of_another_ca": "not signed by the client CA",
    }[mistake] in str(info.value)
    assert _call(secured, headers=_bearer(secured["keys"]["svc-a"]))[0] == 200


def test_no_secret_is_readable_by_others_or_written_in_clear(secured) -> None:
    target = get_target("local", secured["spec"])
    folder = target.folder
    for name in (
        "apikeys.json",
        "apikeys.map",
        "internal.key",
        "tls/endpoint.pem",
        "tls/internal-client.pem",
    ):
        mode = stat.S_IMODE((folder / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    texts = [
        p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and p.name != "internal.key"
    ]
    for key in secured["keys"].values():
        assert not any(key in text for text in texts)
    # the key the router serves now (a rotation test may have replaced the configured one);
    # its line 1 is the ASN.1 header every EC key shares, line 2 holds the secret
    private = (folder / "tls" / "endpoint.pem").read_text().split("PRIVATE KEY-----", 1)[1]
    body = private.split()[1][:40]
    cleartext = [p for p in folder.rglob("*") if p.is_file() and body in p.read_text(errors="replace")]
    assert cleartext == [folder / "tls" / "endpoint.pem"]
    assert "sha2(256)" in (folder / "haproxy.cfg").read_text()
    record = describe_deployment(secured["spec"].name).model_dump_json()
    assert not any(key in record for key in secured["keys"].values())  # the record the flow publishes
    # the model server's slot ports listen only on loopback, where the router reaches them
    slots = [target.slot_status(c) for c in ("blue", "green")]
    assert [a.split(":")[0] for s in slots for a in s.addresses] == ["127.0.0.1"]
