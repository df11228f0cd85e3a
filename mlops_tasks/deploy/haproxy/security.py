"""The router's security lines: TLS binds, API-key checks, per-key rate limits, access log.

Rendered into the configuration by :func:`~mlops_tasks.deploy.haproxy.config.render_config`
when :class:`SecurityLayout` is set (else the endpoint is plain HTTP, as ``make demo``).
Checked on HAProxy 2.6:

- the key comes from ``X-API-Key`` or ``Authorization: Bearer <key>``; its SHA-256
  (``sha2(256),hex``) is looked up in the map file (``map_str``), whose value is
  ``name|expires epoch|rate limit``; no key: 401 with ``WWW-Authenticate: Bearer``; an
  unknown, revoked or expired key: 401 with ``error="invalid_token"``;
- every request of a key is tracked in stick table ``apikey_rates`` (keyed by the key's
  name, ``http_req_rate`` over the period and ``http_req_cnt``); over the key's limit:
  429 with ``Retry-After`` (other keys have their own entries);
- a client-sent ``X-Mlops-Caller`` and the ``Authorization`` / ``X-API-Key`` headers are
  removed, then ``X-Mlops-Caller`` is set to the key's name (never the key);
- TLS binds accept TLS 1.2 and later only; the optional plain-HTTP port redirects to
  HTTPS (308), and refuses (403) a request carrying a key there, logged as a key exposure;
- with mutual TLS both TLS binds verify client certificates (``ca-file``, ``verify
  required``, optional ``crl-file``): a handshake without a certificate from the CA, or
  with a revoked one, fails. The certificate's subject CN (``ssl_c_s_dn(CN)``) names the
  caller when no key does (no keys at all, or ``cert_instead_of_key``); with keys
  required as well, the key's name does;
- one access-log line per request on HAProxy's stdout with the caller's name and the
  client certificate's CN.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "CALLER_HEADER",
    "RATE_TABLE",
    "SecurityLayout",
    "bind_line",
    "global_lines",
    "key_rules",
    "rate_table",
    "redirect_frontend",
]

#: Header the router sets to the key's name (the model server logs it as ``caller``).
CALLER_HEADER = "X-Mlops-Caller"
#: Stick table (a backend of its own) counting each key's requests.
RATE_TABLE = "apikey_rates"

_NO_KEY = (
    '{"error": "No API key: send Authorization: Bearer <key> or X-API-Key: <key>.", '
    '"error_code": "UNAUTHENTICATED"}'
)
_REVOKED = '{"error": "This client certificate was revoked.", "error_code": "CERTIFICATE_REVOKED"}'
_BAD_KEY = '{"error": "Unknown, revoked or expired API key.", "error_code": "UNAUTHENTICATED"}'
_EXPOSED = (
    '{"error": "An API key was sent over plain HTTP, so it may be exposed: revoke it and call '
    'the endpoint over HTTPS.", "error_code": "KEY_OVER_PLAIN_HTTP"}'
)
_LOG_FORMAT = (
    'log-format "%ci:%cp [%tr] %ft %b/%s %ST %B %Ta caller=%[var(txn.caller)] '
    'cert=%[var(txn.cert_cn)] exposure=%[var(txn.exposed)] %{+Q}r"'
)


class SecurityLayout(BaseModel):
    """Paths and limits the security lines need (as HAProxy sees the paths).

    Example:
        ```python
        layout = SecurityLayout(keys_map="/run/ep/apikeys.map", rate_period_s=1,
                                tls_pem="/run/ep/tls/endpoint.pem")
        ```
    """

    keys_map: str | None = Field(None, description="API-key map file; None: no keys required.")
    rate_period_s: int = Field(1, ge=1, description="Period of the per-key request rate.")
    tls_pem: str | None = Field(None, description="PEM with certificate chain and key; None: plain HTTP.")
    http_redirect_port: int | None = Field(None, description="Plain-HTTP port redirecting to HTTPS.")
    https_port: int = Field(0, description="The endpoint port the redirect points to.")
    access_log: bool = Field(True, description="Write an access-log line per request to stdout.")
    client_ca: str | None = Field(None, description="Client CA bundle; set: client certificates required.")
    client_crl: str | None = Field(None, description="Revocation lists of the client CAs (None: no check).")
    cert_instead_of_key: bool = Field(
        False, description="With keys: a verified client certificate admits a caller without a key."
    )
    cert_rate_limit: int = Field(0, ge=0, description="Rate limit of a caller admitted by its certificate.")
    revoked_map: str | None = Field(
        None, description="Map '<serial hex> <issuer CN>' of revoked client certificates (with a CRL)."
    )


def global_lines(layout: SecurityLayout | None) -> list[str]:
    """Lines for ``global``: the access log on stdout."""
    if layout is None or not layout.access_log:
        return []
    return ["    log stdout format raw local0 info"]


def bind_line(host: str, port: int, layout: SecurityLayout | None) -> str:
    """``bind`` of a frontend: TLS 1.2+ with the endpoint's certificate when configured.

    Example:
        ```python
        assert "ssl-min-ver TLSv1.2" in bind_line("127.0.0.1", 8443, SecurityLayout(tls_pem="/x.pem"))
        ```
    """
    if layout is None or layout.tls_pem is None:
        return f"    bind {host}:{port}"
    line = f"    bind {host}:{port} ssl crt {layout.tls_pem} ssl-min-ver TLSv1.2 alpn http/1.1"
    if layout.client_ca is not None:
        line += f" ca-file {layout.client_ca} verify required"
        if layout.client_crl is not None:
            line += f" crl-file {layout.client_crl}"
    return line


def key_rules(layout: SecurityLayout | None) -> list[str]:
    """The ``http-request`` rules of a protected frontend (live and preview alike).

    Without keys only a client-sent caller header is removed (nobody can pose as a caller).
    """
    lines = []
    if layout is not None and layout.access_log:
        lines += ["    log global", f"    {_LOG_FORMAT}"]
    lines.append(f"    http-request del-header {CALLER_HEADER}")
    if layout is not None and layout.client_ca is not None:
        lines.append(
            "    http-request set-var(txn.cert_cn) ssl_c_s_dn(CN) if { ssl_c_used } { ssl_c_verify 0 }"
        )
    if layout is not None and layout.revoked_map is not None:
        # the handshake checked the CRL; a connection opened before its update is refused here
        lines += [
            f"    http-request set-var(txn.revoked_by) ssl_c_serial,hex,map_str({layout.revoked_map}) "
            "if { ssl_c_used }",
            f"    http-request return status 403 content-type application/json string '{_REVOKED}' "
            "if { var(txn.revoked_by) -m found } { ssl_c_i_dn(CN),strcmp(txn.revoked_by) eq 0 }",
        ]
    if layout is None or layout.keys_map is None:
        if layout is not None and layout.client_ca is not None:
            lines += [
                "    http-request set-var(txn.caller) var(txn.cert_cn)",
                f"    http-request set-header {CALLER_HEADER} %[var(txn.caller)] "
                "if { var(txn.caller) -m found }",
            ]
        return lines
    by_cert = layout.client_ca is not None and layout.cert_instead_of_key
    no_key = "unless { var(txn.apikey) -m found }" + (" || { var(txn.cert_cn) -m found }" if by_cert else "")
    keyless = "if !{ var(txn.apikey) -m found }"
    cert_caller = [f"    http-request set-var(txn.caller) var(txn.cert_cn) {keyless}"]
    if layout.cert_rate_limit:
        cert_caller.append(f"    http-request set-var(txn.limit) int({layout.cert_rate_limit}) {keyless}")
    # HAProxy's rate is a sliding estimate: the last period still weighs in during the next
    # one, so a key that went far over its limit is free again after two periods.
    retry = 2 * layout.rate_period_s
    return [
        *lines,
        "    http-request set-var(txn.apikey) req.hdr(x-api-key) if { req.hdr(x-api-key) -m found }",
        "    http-request set-var(txn.apikey) req.hdr(authorization),word(2,' ') "
        "if !{ var(txn.apikey) -m found } { req.hdr(authorization) -m reg -i ^bearer\\ +[^\\ ] }",
        f"    http-request set-var(txn.keyinfo) var(txn.apikey),sha2(256),hex,map_str({layout.keys_map}) "
        "if { var(txn.apikey) -m found }",
        "    http-request set-var(txn.caller) var(txn.keyinfo),field(1,|) if { var(txn.keyinfo) -m found }",
        "    http-request set-var(txn.now) date",
        "    http-request set-var(txn.key_left) var(txn.keyinfo),field(2,|),sub(txn.now) "
        "if { var(txn.caller) -m found }",
        f"    http-request return status 401 content-type application/json string '{_NO_KEY}' "
        f"hdr WWW-Authenticate 'Bearer realm=\"mlops\"' {no_key}",
        f"    http-request return status 401 content-type application/json string '{_BAD_KEY}' "
        'hdr WWW-Authenticate \'Bearer realm="mlops", error="invalid_token"\' '
        "if { var(txn.apikey) -m found } !{ var(txn.caller) -m found } "
        "|| { var(txn.apikey) -m found } !{ var(txn.key_left) -m int gt 0 }",
        "    http-request set-var(txn.limit) var(txn.keyinfo),field(3,|)",
        *(cert_caller if by_cert else []),
        f"    http-request track-sc0 var(txn.caller) table {RATE_TABLE}",
        "    http-request set-var(txn.over) sc_http_req_rate(0),sub(txn.limit) "
        "if { var(txn.limit) -m int gt 0 }",
        "    http-request return status 429 content-type application/json string "
        f'\'{{"error": "Rate limit of this API key exceeded; retry after {retry} s.", '
        f'"error_code": "RATE_LIMITED"}}\' hdr Retry-After {retry} if {{ var(txn.over) -m int gt 0 }}',
        "    http-request del-header authorization",
        "    http-request del-header x-api-key",
        f"    http-request set-header {CALLER_HEADER} %[var(txn.caller)]",
    ]


def rate_table(layout: SecurityLayout | None) -> list[str]:
    """The stick-table backend counting each key's requests (empty without keys)."""
    if layout is None or layout.keys_map is None:
        return []
    return [
        "",
        f"backend {RATE_TABLE}",
        f"    stick-table type string len 64 size 100k expire 24h "
        f"store http_req_cnt,http_req_rate({layout.rate_period_s}s)",
    ]


def redirect_frontend(host: str, layout: SecurityLayout | None) -> list[str]:
    """The optional plain-HTTP frontend: 403 for a request carrying a key, else 308 to HTTPS."""
    if layout is None or layout.http_redirect_port is None or layout.tls_pem is None:
        return []
    lines = ["", "frontend plain_http_in", f"    bind {host}:{layout.http_redirect_port}"]
    if layout.access_log:
        lines += ["    log global", f"    {_LOG_FORMAT}"]
    return [
        *lines,
        "    acl has_key req.hdr(authorization) -m found",
        "    acl has_key req.hdr(x-api-key) -m found",
        "    http-request set-var(txn.exposed) str(key-over-plain-http) if has_key",
        f"    http-request return status 403 content-type application/json string '{_EXPOSED}' if has_key",
        f"    http-request redirect location https://%[req.hdr(host),field(1,:)]:{layout.https_port}"
        "%[capture.req.uri] code 308",
    ]
