"""Endpoint security settings checked before anything runs: key sources, Secret blocks, log column."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from mlops_tasks.deploy.apikeys import KeyStore, hash_key, new_key, parse_keys
from mlops_tasks.deploy.endpoint_security import prepare_security
from mlops_tasks.deploy.models import EndpointSecurity, EndpointSpec
from mlops_tasks.deploy.secrets import register_secret_reader
from mlops_tasks.errors import EndpointSecurityError, SecretBlockNotFoundError


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("svc-a short\n", "at least 22"),
        ("bad/name " + "k" * 30, "not valid"),
        (f"svc-a {'k' * 30}\nsvc-a {'j' * 30}\n", "appears twice"),
        (f"svc-a {'k' * 30} 2026-01-01 extra\n", "has 4 fields"),
        (f"svc-a {'k' * 30} tomorrow\n", "not an ISO-8601 time"),
        ('{"svc-a": ', "not valid JSON"),
    ],
)
def test_malformed_key_sources_are_refused(text: str, needle: str) -> None:
    with pytest.raises(EndpointSecurityError, match=needle):
        parse_keys(text, "test")


def test_keys_from_json_and_lines() -> None:
    key = new_key()
    assert len(key) >= 4 + 43  # 256 random bits, URL-safe
    assert parse_keys(
        f'{{"a": "{key}", "b": {{"key": "{key}x", "expires": "2030-01-01T00:00:00Z"}}}}', "t"
    ) == [
        ("a", key, None),
        ("b", key + "x", "2030-01-01T00:00:00Z"),
    ]
    assert parse_keys(f"# comment\n\na {key}  # trailing\n", "t") == [("a", key, None)]


def test_store_keeps_hashes_only_and_refuses_bad_operations(tmp_path: Path) -> None:
    security = EndpointSecurity(api_keys=True, rate_limit=5)
    store = KeyStore(tmp_path, endpoint="ep")
    store.sync(security)
    key = store.issue(security, "svc-a", expires="2099-01-01T00:00:00Z")
    text = (tmp_path / "apikeys.map").read_text()
    assert key not in text and hash_key(key) in text and "svc-a|4070908800|5" in text
    with pytest.raises(EndpointSecurityError, match="already exists"):
        store.issue(security, "svc-a")
    with pytest.raises(EndpointSecurityError, match="in the past"):
        store.issue(security, "old", expires="2001-01-01T00:00:00Z")
    with pytest.raises(EndpointSecurityError, match="has no API key 'nobody'"):
        store.revoke(security, "nobody")
    with pytest.raises(EndpointSecurityError, match="tooling's own key"):
        store.revoke(security, "mlops-internal")
    store.revoke(security, "svc-a")
    assert hash_key(key) not in (tmp_path / "apikeys.map").read_text()


def test_a_revoked_key_stays_revoked_though_its_file_still_lists_it(tmp_path: Path, caplog) -> None:
    keys = {"svc-a": new_key(), "svc-b": new_key()}
    source = tmp_path / "keys.txt"
    source.write_text("".join(f"{n} {k}\n" for n, k in keys.items()))
    source.chmod(0o600)
    security = EndpointSecurity(api_keys=True, api_keys_file=str(source))
    store = KeyStore(tmp_path / "ep", endpoint="ep")
    store.sync(security)
    store.revoke(security, "svc-b")
    with caplog.at_level(logging.WARNING):
        store.sync(security)  # the next deployment reads the unchanged file
    assert "'svc-b' in the file was revoked" in caplog.text and keys["svc-b"] not in caplog.text
    assert set(store.records()) == {"svc-a", "mlops-internal"}
    text = (tmp_path / "ep" / "apikeys.map").read_text()
    assert hash_key(keys["svc-b"]) not in text and hash_key(keys["svc-a"]) in text
    keys["svc-b"] = new_key()  # the caller gets a new key under the same name: it works
    source.write_text("".join(f"{n} {k}\n" for n, k in keys.items()))
    store.sync(security)
    assert store.records()["svc-b"].sha256 == hash_key(keys["svc-b"])


def test_a_missing_secret_block_is_a_configuration_error(tmp_path: Path) -> None:
    def reader(name: str) -> str:
        raise ValueError(f"Unable to find block document named {name} for block type secret")

    register_secret_reader(reader)
    spec = EndpointSpec(name="sec-unit", security=EndpointSecurity(api_keys=True, api_keys_secret="nope"))
    with pytest.raises(SecretBlockNotFoundError, match="'nope'.*does not exist"):
        prepare_security(tmp_path, spec)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_prefect_secret_block_reader(prefect_harness, tmp_path: Path) -> None:
    from prefect.blocks.system import Secret

    from mlops_tasks.tasks.access import read_prefect_secret

    key = new_key()
    Secret(value=f"svc-s {key}\n").save("sec-unit-keys", overwrite=True)
    register_secret_reader(read_prefect_secret)
    spec = EndpointSpec(
        name="sec-unit2", security=EndpointSecurity(api_keys=True, api_keys_secret="sec-unit-keys")
    )
    prepare_security(tmp_path, spec)
    assert f"{hash_key(key)} svc-s|" in (tmp_path / "apikeys.map").read_text()
    bad = EndpointSpec(
        name="sec-unit3", security=EndpointSecurity(api_keys=True, api_keys_secret="missing-block")
    )
    with pytest.raises(SecretBlockNotFoundError):
        prepare_security(tmp_path / "other", bad)


def test_binding_beyond_loopback_without_tls_and_keys_warns(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert prepare_security(tmp_path, EndpointSpec(name="open", host="0.0.0.0")) is None
    assert "without TLS and API keys" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prepare_security(tmp_path, EndpointSpec(name="demo"))
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"tls_cert_file": "c.pem"}, "needs tls_key_file"),
        ({"api_keys_file": "k.txt"}, "api_keys is off"),
        ({"http_redirect_port": 8080}, "needs TLS"),
        ({"rate_limit": 10}, "per API key"),
    ],
)
def test_inconsistent_security_settings(settings: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        EndpointSecurity(**settings)


def test_prediction_log_caller_column_is_nullable_and_old_partitions_still_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_tasks.serving import PredictionLogWriter, read_prediction_log

    old = tmp_path / "date=2026-01-01" / "hour=00"
    old.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "request_id": ["old"],
                "timestamp": pa.array([1767225600_000000], type=pa.timestamp("us", tz="UTC")),
                "model_name": ["m"],
                "model_version": ["1"],
                "served_by": ["s"],
                "x": [1.0],
                "prediction": [0.5],
            }
        ),
        old / "20260101T000000000000Z-aaaaaaaa.parquet",
    )
    writer = PredictionLogWriter(str(tmp_path), ["x"], "m", "1", "s", flush_interval_s=0.05)
    writer.start()
    writer.append(
        ["a", "b"],
        [1767225601.0, 1767225602.0],
        np.array([[1.0], [2.0]]),
        np.array([1, 0]),
        callers=["svc-a", None],
    )
    writer.close()
    log = read_prediction_log(str(tmp_path))
    assert log["request_id"].tolist() == ["old", "a", "b"]
    assert log["caller"].tolist() == [None, "svc-a", None]


def test_the_watchdog_expires_keys_and_reports_each(tmp_path: Path) -> None:
    import json
    import time
    from datetime import UTC, datetime, timedelta

    from mlops_tasks.deploy.state import endpoint_dir
    from mlops_tasks.deploy.watchdog import Watchdog

    spec = EndpointSpec(name="sec-expiry", security=EndpointSecurity(api_keys=True))
    folder = endpoint_dir(spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "supervisor.json").write_text(json.dumps({"kind": "local", "spec": spec.model_dump()}))
    store = KeyStore(folder, endpoint=spec.name)
    store.sync(spec.security)
    store.issue(spec.security, "short", expires=(datetime.now(UTC) + timedelta(seconds=1)).isoformat())
    store.issue(spec.security, "long")
    time.sleep(1.1)
    events: list[tuple[str, dict]] = []
    dog = Watchdog(spec.name, key_emitter=lambda e, p: events.append((e, p)))
    assert dog.expire_keys() == ["short"]
    assert [(e, p["name"], p["reason"], p["actor"]) for e, p in events] == [
        ("mlops.apikey.revoked", "short", "expired", "expiry")
    ]
    assert set(store.records()) == {"long", "mlops-internal"}
    assert dog.expire_keys() == []


@pytest.fixture
def mtls_sources(tmp_path: Path):
    """A server certificate and a client CA with its CRL, as files; the spec that uses them."""
    from tests.tls_support import CertAuthority

    ca, clients = CertAuthority(), CertAuthority("client CA")
    cert, key = ca.issue().write(tmp_path, "server")
    (tmp_path / "clients-ca.pem").write_bytes(clients.pem)
    (tmp_path / "clients.crl").write_bytes(clients.crl())
    security = EndpointSecurity(
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        client_ca_file=str(tmp_path / "clients-ca.pem"),
        client_crl_file=str(tmp_path / "clients.crl"),
    )
    return {
        "dir": tmp_path,
        "clients": clients,
        "ca": ca,
        "spec": EndpointSpec(name="mtls", security=security),
    }


@pytest.mark.parametrize(
    ("mistake", "needle"),
    [
        ("missing_ca", "does not exist"),
        ("unreadable_ca", "cannot be read"),
        ("ca_not_a_certificate", "holds no PEM certificate"),
        ("ca_is_a_leaf", "is not a CA certificate"),
        ("crl_of_another_ca", "not signed by the client CA"),
        ("crl_forged_in_the_ca_name", "not signed by the client CA"),
        ("crl_out_of_date", "due for its next update"),
        ("crl_not_a_crl", "holds no PEM revocation list"),
        ("ca_without_crl", "holds no revocation list of the client CA"),
    ],
)
def test_client_ca_and_crl_mistakes_are_refused_before_anything_is_written(
    mtls_sources, mistake: str, needle: str
) -> None:
    from tests.tls_support import CertAuthority

    d, clients = mtls_sources["dir"], mtls_sources["clients"]
    update: dict[str, str] = {}
    if mistake == "missing_ca":
        update["client_ca_file"] = str(d / "nope.pem")
    elif mistake == "unreadable_ca":
        update["client_ca_file"] = str(d)  # a folder cannot be read as a file
    elif mistake == "ca_not_a_certificate":
        update["client_ca_file"] = str(d / "server.key")
    elif mistake == "ca_is_a_leaf":
        update["client_ca_file"] = str(d / "server.crt")
    elif mistake == "crl_of_another_ca":
        (d / "clients.crl").write_bytes(CertAuthority("another CA").crl())
    elif mistake == "crl_forged_in_the_ca_name":  # same issuer name, another key
        (d / "clients.crl").write_bytes(CertAuthority("client CA").crl())
    elif mistake == "crl_out_of_date":
        (d / "clients.crl").write_bytes(clients.crl(hours=-1, age_hours=48))
    elif mistake == "crl_not_a_crl":
        update["client_crl_file"] = str(d / "clients-ca.pem")
    else:
        other = CertAuthority("second client CA")
        (d / "clients-ca.pem").write_bytes(clients.pem + other.pem)
    spec = mtls_sources["spec"]
    bad = spec.model_copy(update={"security": spec.security.model_copy(update=update)})
    with pytest.raises(EndpointSecurityError, match=needle):
        prepare_security(d / "endpoint", bad)
    assert not (d / "endpoint").exists()  # nothing written


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"client_ca_file": "ca.pem"}, "mutual TLS\\) needs TLS"),
        ({"client_ca_file": "ca.pem", "client_ca_secret": "ca", "tls_secret": "t"}, "not both"),
        ({"client_crl_file": "c.crl", "tls_secret": "t"}, "needs mutual TLS"),
        (
            {"client_cert_instead_of_key": True, "client_ca_file": "ca.pem", "tls_secret": "t"},
            "api_keys=True",
        ),
    ],
)
def test_inconsistent_client_certificate_settings(settings: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        EndpointSecurity(**settings)


def test_the_rendered_router_requires_client_certificates_on_both_ports(mtls_sources) -> None:
    from mlops_tasks.deploy.router import MIRROR_LUA, RouterConfig, render_config, write_checked

    d = mtls_sources["dir"] / "endpoint"
    layout = prepare_security(d, mtls_sources["spec"])
    assert layout is not None
    (d / "mirror.lua").write_text(MIRROR_LUA)
    text = render_config(
        RouterConfig(
            port=8443, preview_port=8444, admin_socket=str(d / "a.sock"), lua_path=str(d / "mirror.lua")
        ).model_copy(update={"security": layout})
    )
    binds = [line for line in text.splitlines() if line.strip().startswith("bind ")]
    assert len(binds) == 2
    for line in binds:
        assert f"ca-file {d}/tls/client-ca.pem verify required crl-file {d}/tls/client.crl" in line
    write_checked(d / "haproxy.cfg", text)  # HAProxy itself accepts it (haproxy -c), files and all
    bundle = (d / "tls" / "client-ca.pem").read_text()
    assert mtls_sources["clients"].pem.decode().strip() in bundle and bundle.count("BEGIN CERTIFICATE") == 2
    assert (d / "tls" / "client.crl").read_text().count("BEGIN X509 CRL") == 2  # the operator's + tooling's


def test_a_redeploy_never_replaces_a_newer_live_crl_with_an_older_file(mtls_sources, caplog) -> None:
    d, clients = mtls_sources["dir"], mtls_sources["clients"]
    spec = mtls_sources["spec"]
    prepare_security(d / "endpoint", spec)
    newer = clients.crl(revoked=(1234,), age_hours=0)
    (d / "newer.crl").write_bytes(newer)
    from mlops_tasks.deploy.client_certs import crl_path, load_client_trust, write_crl

    write_crl(d / "endpoint", load_client_trust(spec.security, "mtls", str(d / "newer.crl")))
    with caplog.at_level(logging.WARNING):
        prepare_security(d / "endpoint", spec)  # the configured file still holds the older list
    assert "older than the one the router holds" in caplog.text
    assert newer.decode().strip() in crl_path(d / "endpoint").read_text()


def test_revoked_serials_are_written_as_the_router_reads_them() -> None:
    from mlops_tasks.deploy.client_certs import revoked_entries
    from tests.tls_support import CertAuthority

    ca = CertAuthority("churn clients CA")
    text = ca.crl(revoked=(0x80, 0xFFF, 2**158 + 7)).decode()
    assert revoked_entries(text) == [
        "80 churn clients CA",  # ssl_c_serial,hex: the serial's bytes, upper case
        "0FFF churn clients CA",
        "4000000000000000000000000000000000000007 churn clients CA",
    ]


def test_a_redeploy_keeps_a_certificate_rotated_live_and_takes_a_newer_configured_one(
    mtls_sources, caplog
) -> None:
    from mlops_tasks.deploy.tls import pem_path, replace_certificate

    d, ca, spec = mtls_sources["dir"], mtls_sources["ca"], mtls_sources["spec"]
    folder = d / "endpoint"
    prepare_security(folder, spec)
    rotated = ca.issue(start_days=-0.5)  # issued after the configured one
    replace_certificate(folder, (rotated.cert_pem + rotated.key_pem).decode())
    with caplog.at_level(logging.WARNING):
        prepare_security(folder, spec)  # the configured files still hold the older certificate
    assert "older than the one the router holds" in caplog.text
    assert rotated.cert_pem.decode().strip() in pem_path(folder).read_text()
    newest = ca.issue(start_days=-0.1)  # the operator points the spec at a newer one
    cert, key = newest.write(d, "newest")
    update = {"tls_cert_file": str(cert), "tls_key_file": str(key)}
    prepare_security(folder, spec.model_copy(update={"security": spec.security.model_copy(update=update)}))
    assert newest.cert_pem.decode().strip() in pem_path(folder).read_text()
