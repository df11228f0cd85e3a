"""Parameters and results of the deployment stage (pydantic models, no I/O)."""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Color = Literal["blue", "green"]
Strategy = Literal["all_at_once", "canary", "linear", "shadow"]
Outcome = Literal["running", "succeeded", "rolled_back", "failed", "noop"]

__all__ = [
    "AB_SUBJECT_HEADER",
    "AbSplit",
    "COLORS",
    "Color",
    "DeploymentRecord",
    "ApiKeyView",
    "EndpointDescription",
    "EndpointSecurity",
    "EndpointSpec",
    "GuardLimits",
    "Outcome",
    "RolloutSpec",
    "SlotStatus",
    "Strategy",
    "TimelineEvent",
    "now_iso",
    "other",
    "whoami",
]

COLORS: tuple[Color, Color] = ("blue", "green")


def other(color: Color) -> Color:
    """The other slot color.

    Example:
        ```python
        assert other("blue") == "green"
        ```
    """
    return "green" if color == "blue" else "blue"


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def whoami() -> str:
    """``user@host`` of the process running the deployment."""
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


#: The request header a caller names its subject in (sticky A/B assignment).
AB_SUBJECT_HEADER = "X-Subject-Id"


class AbSplit(BaseModel):
    """How the router splits live traffic between variants A and B of an A/B test.

    ``sticky``: the router hashes the ``X-Subject-Id`` header (``crc32 % 100``) and sends
    buckets below ``percent_a`` to A, the rest to B, so a subject always meets the same
    variant and :func:`bucket_of` recomputes it; a request without the header goes to A
    (the champion) and is not part of the experiment. ``request``: each request draws
    its bucket at random. A request never moves to the other variant (retries and
    redispatch stay inside the variant's slot).

    Example:
        ```python
        AbSplit(mode="sticky", percent_a=50, colors={"A": "blue", "B": "green"})
        ```
    """

    model_config = ConfigDict(frozen=True)

    mode: Literal["sticky", "request"] = "sticky"
    percent_a: int = Field(50, ge=1, le=99, description="Share of buckets (of 100) that go to A.")
    colors: dict[Literal["A", "B"], Color] = Field(description="Slot of each variant.")

    @model_validator(mode="after")
    def _two_slots(self) -> AbSplit:
        if set(self.colors) != {"A", "B"} or self.colors["A"] == self.colors["B"]:
            raise ValueError(f"A/B split needs A and B in different slots, got {self.colors}")
        return self

    @staticmethod
    def bucket_of(subject: str) -> int:
        """The bucket (0-99) the router gives ``subject``: ``crc32(subject) % 100``.

        Example:
            ```python
            assert AbSplit.bucket_of("alice") == 35
            ```
        """
        import zlib

        return zlib.crc32(subject.encode("utf-8")) % 100

    def variant_of(self, subject: str) -> Literal["A", "B"]:
        """The variant a sticky split assigns ``subject``."""
        return "A" if self.bucket_of(subject) < self.percent_a else "B"


class GuardLimits(BaseModel):
    """Limits the bake guard checks on the candidate's own ``/metrics`` during every bake period.

    Example:
        ```python
        limits = GuardLimits(max_error_share=0.01, max_p95_latency_ms=250)
        ```
    """

    model_config = ConfigDict(frozen=True)

    max_error_share: float = Field(
        0.01, ge=0, le=1, description="Highest share of the candidate's /invocations answers that may be 5xx."
    )
    max_p95_latency_ms: float = Field(
        500.0, gt=0, description="Highest p95 latency (ms) of the candidate's /invocations requests."
    )
    min_requests: int = Field(
        5,
        ge=1,
        description="Candidate answers needed before a share or latency is judged; a "
        "bake that saw fewer is extended by extend_s, then fails (it never passes by default).",
    )
    interval_s: float = Field(0.5, gt=0, description="Seconds between two guard evaluations during a bake.")
    probe: bool = Field(
        True,
        description="Send one real request (a smoke row) through the preview port to the "
        "candidate at every evaluation, so a bake on a quiet endpoint still has evidence.",
    )
    extend_s: float = Field(
        30.0, ge=0, description="Longest extension of a bake that saw too few candidate answers."
    )
    max_4xx_share_margin: float = Field(
        0.02,
        ge=0,
        le=1,
        description="How far the candidate's 4xx share may exceed the live slot's on the same "
        "(split or mirrored) traffic before it is a breach (beyond chance); a caller's 4xx "
        "never counts on its own.",
    )


class RolloutSpec(BaseModel):
    """How traffic moves from the live slot to the candidate (SageMaker-style guardrails).

    Example:
        ```python
        spec = RolloutSpec(strategy="canary", canary_percent=10, bake_seconds=60)
        fast = RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0)
        ```
    """

    model_config = ConfigDict(frozen=True)

    strategy: Strategy = Field("canary", description="all_at_once, canary, linear or shadow.")
    canary_percent: int = Field(
        10, ge=1, le=99, description="Share of traffic the candidate gets while a canary bakes."
    )
    linear_step_percent: int = Field(25, ge=1, le=99, description="Step of the linear shift, in percent.")
    bake_seconds: float = Field(60.0, ge=0, description="Bake period after each shift step (0 = none).")
    guard: GuardLimits = Field(default_factory=GuardLimits, description="Bake guard limits.")
    termination_wait_s: float = Field(
        30.0, ge=0, description="How long the old live slot stays warm after success before it is stopped."
    )
    load_timeout_s: float = Field(
        120.0, gt=0, description="Longest wait for the candidate's /health to answer 200."
    )
    health_tries: int = Field(
        2,
        ge=1,
        description="Consecutive 200 answers of /health needed before the candidate counts as healthy.",
    )
    smoke_rows: int = Field(50, ge=1, description="Holdout rows sent through the preview port.")
    smoke_tolerance: float = Field(
        1e-6, ge=0, description="Largest absolute difference allowed between numeric predictions."
    )
    shadow_min_agreement: float = Field(
        0.95,
        ge=0,
        le=1,
        description="Shadow: least share of live rows where the candidate agrees with the live slot.",
    )
    promote_after_shadow: bool = Field(
        True,
        description="Shadow: shift all traffic to the candidate when the comparison passes (else stop it).",
    )

    def steps(self) -> list[int]:
        """Green's traffic percentages, in order, ending at 100 (empty for shadow).

        Example:
            ```python
            assert RolloutSpec(strategy="linear", linear_step_percent=40).steps() == [40, 80, 100]
            ```
        """
        if self.strategy == "all_at_once":
            return [100]
        if self.strategy == "canary":
            return [self.canary_percent, 100]
        if self.strategy == "linear":
            return [*range(self.linear_step_percent, 100, self.linear_step_percent), 100]
        return []


class EndpointSecurity(BaseModel):
    """Who may call an endpoint and how: API keys, rate limits, TLS (all off by default).

    Keys come from a file (lines ``name key [expires ISO-8601]``, mode 600) and/or a Prefect
    Secret block (the same lines, or a JSON object ``{name: key}``), and keys issued with
    :func:`~mlops_tasks.deploy.apikeys.issue_key`. The router only ever holds SHA-256
    hashes of them. TLS takes a PEM certificate and key from files or a Secret block (the
    PEM text of both).

    Example:
        ```python
        security = EndpointSecurity(api_keys=True, api_keys_file="/etc/mlops/churn.keys",
                                    rate_limit=200, tls_cert_file="/etc/mlops/churn.pem",
                                    tls_key_file="/etc/mlops/churn.key")
        endpoint = EndpointSpec(name="churn", host="0.0.0.0", port=8443, security=security)
        ```
    """

    model_config = ConfigDict(frozen=True)

    api_keys: bool = Field(False, description="Require an API key (Authorization: Bearer, or X-API-Key).")
    api_keys_file: str | None = Field(None, description="File of 'name key [expires]' lines (mode 600).")
    api_keys_secret: str | None = Field(None, description="Prefect Secret block holding keys.")
    rate_limit: int = Field(
        0, ge=0, description="Requests per rate_period_s allowed to each key (0: no limit); over it: 429."
    )
    rate_period_s: int = Field(1, ge=1, le=3600, description="Period of rate_limit, in seconds.")
    tls_cert_file: str | None = Field(None, description="PEM certificate (chain) of the endpoint.")
    tls_key_file: str | None = Field(None, description="PEM private key of the certificate.")
    tls_secret: str | None = Field(None, description="Prefect Secret block holding the PEM cert and key.")
    http_redirect_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="With TLS: a plain-HTTP port that redirects to HTTPS; a request carrying "
        "a key there is refused (403) and logged as a key exposure. None: no plain HTTP at all.",
    )

    client_ca_file: str | None = Field(
        None,
        description="Mutual TLS: PEM bundle of the CA certificate(s) that issue client certificates; "
        "set, both TLS ports refuse a handshake without a certificate from it.",
    )
    client_ca_secret: str | None = Field(
        None, description="Prefect Secret block holding the client CA bundle."
    )
    client_crl_file: str | None = Field(
        None,
        description="PEM revocation list(s) signed by the client CA(s); updated live with "
        "update_client_crl. None: no revocation checking.",
    )
    client_cert_instead_of_key: bool = Field(
        False,
        description="With api_keys and mutual TLS: a caller whose certificate verified needs no API "
        "key (its certificate's CN names it); a key it sends anyway is still checked. "
        "False: both the certificate and a key are needed.",
    )

    @property
    def tls(self) -> bool:
        """TLS is configured."""
        return bool(self.tls_secret or self.tls_cert_file)

    @property
    def mtls(self) -> bool:
        """Mutual TLS is configured (client certificates from a CA)."""
        return bool(self.client_ca_file or self.client_ca_secret)

    @property
    def enabled(self) -> bool:
        """Any protection is configured."""
        return self.api_keys or self.tls

    def signature(self) -> str:
        """These settings as a router signature spells them ("off" when nothing is configured).

        A router whose configuration file starts with another signature is re-rendered.
        """
        return json.dumps(self.model_dump(), sort_keys=True) if self.enabled else "off"

    @model_validator(mode="after")
    def _consistent(self) -> EndpointSecurity:
        if self.tls_cert_file and not self.tls_key_file:
            raise ValueError("tls_cert_file needs tls_key_file (the certificate's private key)")
        if self.tls_key_file and not self.tls_cert_file:
            raise ValueError("tls_key_file needs tls_cert_file")
        if self.tls_secret and self.tls_cert_file:
            raise ValueError("give the certificate either as files or as tls_secret, not both")
        if (self.api_keys_file or self.api_keys_secret) and not self.api_keys:
            raise ValueError("api_keys_file/api_keys_secret given but api_keys is off; set api_keys=True")
        if self.http_redirect_port is not None and not self.tls:
            raise ValueError("http_redirect_port needs TLS (tls_cert_file/tls_key_file or tls_secret)")
        if self.rate_limit and not self.api_keys:
            raise ValueError("rate_limit is per API key; set api_keys=True")
        if self.mtls and not self.tls:
            raise ValueError(
                "client_ca_file/client_ca_secret (mutual TLS) needs TLS: give the endpoint's own "
                "certificate too (tls_cert_file/tls_key_file or tls_secret)"
            )
        if self.client_ca_file and self.client_ca_secret:
            raise ValueError("give the client CA either as client_ca_file or as client_ca_secret, not both")
        if self.client_crl_file and not self.mtls:
            raise ValueError("client_crl_file needs mutual TLS: set client_ca_file or client_ca_secret")
        if self.client_cert_instead_of_key and not (self.mtls and self.api_keys):
            raise ValueError(
                "client_cert_instead_of_key needs mutual TLS (client_ca_file or client_ca_secret) "
                "and api_keys=True (without keys the certificate alone admits a caller anyway)"
            )
        return self


class EndpointSpec(BaseModel):
    """Where an endpoint listens. Its name keys ports, state folder and lock.

    Example:
        ```python
        endpoint = EndpointSpec(name="churn", port=8000)
        assert endpoint.preview == 8001
        ```
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field("default", pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$", description="Endpoint name.")
    host: str = Field("127.0.0.1", description="Interface the router listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port clients use.")
    preview_port: int | None = Field(
        None, ge=1, le=65535, description="Port that always reaches the idle slot (default port + 1)."
    )
    replicas: int = Field(1, ge=1, le=16, description="Model-server processes per slot.")
    security: EndpointSecurity = Field(
        default_factory=EndpointSecurity, description="API keys, rate limits and TLS (off: plain HTTP)."
    )

    @property
    def preview(self) -> int:
        """The preview port."""
        return self.preview_port or self.port + 1

    @model_validator(mode="after")
    def _distinct_ports(self) -> EndpointSpec:
        if self.preview == self.port:
            raise ValueError("preview_port must differ from port")
        return self


class SlotStatus(BaseModel):
    """What runs in one slot, as read back from the target (not from a state file).

    Example:
        ```python
        slot = target.slot_status("blue")
        print(slot.version, slot.addresses, slot.healthy)
        ```
    """

    color: Color
    version: int | None = Field(None, description="Model version the slot serves (from /version).")
    model_name: str | None = None
    addresses: list[str] = Field(default_factory=list, description="host:port of each replica.")
    pids: list[int] = Field(default_factory=list, description="Process ids (local target).")
    containers: list[str] = Field(default_factory=list, description="Container ids (docker target).")
    running: int = Field(0, description="Replicas whose process runs.")
    healthy: bool = Field(False, description="Every replica answered /health 200.")
    weight: int = Field(0, description="Router weight of the slot's servers (0..100).")
    router_state: str = Field("", description="HAProxy state of the first server (UP, DOWN, MAINT, DRAIN).")


class TimelineEvent(BaseModel):
    """One step of a deployment."""

    at: str = Field(default_factory=now_iso)
    step: str
    detail: str = ""


class DeploymentRecord(BaseModel):
    """Who deployed what where, how, and what happened (kept per endpoint).

    Example:
        ```python
        record = deploy_blue_green("churn", 4, endpoint=EndpointSpec(name="churn"))
        for event in record.timeline:
            print(event.at, event.step, event.detail)
        ```
    """

    id: str
    endpoint: str
    target: str
    model_name: str
    version: int
    previous_version: int | None = None
    live_color: Color | None = Field(None, description="Slot serving when the deployment ended.")
    strategy: Strategy
    kind: Literal["deploy", "rollback", "abtest"] = "deploy"
    who: str = Field(default_factory=whoami)
    started_at: str = Field(default_factory=now_iso)
    finished_at: str | None = None
    outcome: Outcome = "running"
    error: str | None = None
    switch_ms: float | None = Field(None, description="Green healthy to 100 % of traffic, in ms.")
    failed_step: str | None = Field(
        None, description="Timeline step the rollout had reached when it failed (e.g. 'shift')."
    )
    guard: dict[str, float] = Field(default_factory=dict, description="Last guard reading.")
    shadow: dict[str, float] = Field(default_factory=dict, description="Shadow comparison figures.")
    timeline: list[TimelineEvent] = Field(default_factory=list)

    def event(self, step: str, detail: str = "") -> TimelineEvent:
        """Append a timeline event and return it."""
        ev = TimelineEvent(step=step, detail=detail)
        self.timeline.append(ev)
        return ev


class ApiKeyView(BaseModel):
    """One API key of an endpoint as ``describe`` lists it (never the key itself)."""

    name: str
    created: str
    expires: str | None = None
    source: str = Field("issued", description="issued, file, secret or internal (the tooling's own).")
    expired: bool = False
    requests: int = Field(
        0, description="Requests the router counted (24 h after the last one; reset on restart)."
    )
    last_used: str | None = Field(None, description="Time of the last request the router counted.")
    internal: bool = False


class SecurityView(BaseModel):
    """What protects a live endpoint, read from the files its router holds (``describe``).

    Example:
        ```python
        view = describe_deployment("churn").security
        print(view.certificate_not_after, view.client_cas, view.revoked_certificates)
        ```
    """

    tls: bool
    certificate_subject: str | None = None
    certificate_not_after: datetime | None = None
    certificate_sha256: str | None = None
    http_redirect_port: int | None = None
    api_keys: bool = False
    rate_limit: int = Field(0, description="Requests per rate_period_s per key or client (0: none).")
    rate_period_s: int = 1
    client_certificates: bool = Field(False, description="Mutual TLS: a client certificate is required.")
    client_cas: list[str] = Field(default_factory=list, description="Subjects of the operator's client CAs.")
    client_cert_instead_of_key: bool = False
    revocation_list: bool = Field(False, description="Client certificates are checked against a CRL.")
    revoked_certificates: int = Field(0, description="Client certificates the router's CRL revokes.")
    crl_next_update: datetime | None = Field(
        None, description="The earliest next update of the router's CRLs (renew it before then)."
    )


class EndpointDescription(BaseModel):
    """What serves where right now (read back from router and slots).

    Example:
        ```python
        info = describe_deployment("churn")
        print(info.live_version, info.url)
        ```
    """

    endpoint: str
    target: str
    url: str
    preview_url: str
    router_running: bool
    live_color: Color | None
    live_version: int | None
    model_name: str | None
    slots: dict[str, SlotStatus]
    last_deployment: DeploymentRecord | None = None
    api_keys: list[ApiKeyView] = Field(
        default_factory=list, description="Keys, with use counts (API keys on)."
    )
    security: SecurityView | None = Field(None, description="TLS, keys, client CAs and CRL (when secured).")
