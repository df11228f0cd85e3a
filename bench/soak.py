"""Soak benchmark: a secured endpoint under authenticated keep-alive load, with changes mid-run.

Runs on loopback only, in a temporary state folder with its own MLflow store (local target):

1. registers two versions of a churn model; makes a CA, a server certificate and three
   keys (two for the load, one to revoke) in a key file; deploys version 1 with TLS, API
   keys and a per-key rate limit set above the soak's own rate;
2. drives ``--seconds`` (default 600) of load through the router: ``--connections``
   keep-alive HTTPS connections at ``--rate`` requests/s each, never retrying, each
   request with its own ``X-Request-Id``; a share of them unauthenticated (no key or an
   unknown key) and a share malformed (broken JSON, non-UTF-8 bytes, a wrong content
   type), all with a valid key;
3. at 30 % deploys version 2 as a canary and rolls it back by hand once it is live at its
   first step's weight; at 50 % rotates the certificate; at 60 % revokes the third key
   (its connection stops using it first);
4. at the end stops the load, detaches the live slot from the router and SIGTERMs its
   server, then matches the prediction log with the answers by request id.

``failed`` counts connection errors, resets, timeouts and 5xx answers to authenticated,
well-formed requests. Server RSS is the live slot's servers' (60 s after the load starts,
or at a quarter of a shorter run, and at the end); router RSS is HAProxy's processes'.
The last line of all output::

    soak: seconds=<n> requests=<n> failed=<n> unauthenticated_sent=<n> ...

Run: ``nice -n 10 .venv/bin/python bench/soak.py [--seconds 60]``
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import random
import shutil
import ssl
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MALFORMED = [
    (b'{"dataframe_split": {', "application/json"),
    (b'{"inputs": {"x": ["caf\xe9"]}}', "application/json"),
    (b'{"inputs": {}}', "text/plain"),
    (b"[" * 3000, "application/json"),
]


@dataclass
class Tally:
    """What the soak clients saw."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    failed: list[str] = field(default_factory=list)
    unauth_sent: int = 0
    unauth_rejected: int = 0
    malformed_sent: int = 0
    malformed_4xx: int = 0
    rate_limited: int = 0
    answered: set[str] = field(default_factory=set)
    revoked_after: int = 0


class Client(threading.Thread):
    """One keep-alive HTTPS connection at ``rate`` requests/s, no retries."""

    def __init__(
        self, n: int, port: int, key: str, bodies: list[bytes], rate: float, tally: Tally, share: float
    ):
        super().__init__(daemon=True)
        self.n, self.port, self.key, self.bodies, self.rate, self.tally = n, port, key, bodies, rate, tally
        self.share = share
        self.stop = threading.Event()
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.random = random.Random(n)

    def run(self) -> None:
        conn: http.client.HTTPSConnection | None = None
        period, k = 1.0 / self.rate, 0
        while not self.stop.is_set():
            started = time.monotonic()
            k += 1
            rid = f"soak-{self.n}-{k}"
            roll = self.random.random()
            kind = "unauth" if roll < self.share else ("malformed" if roll < 2 * self.share else "good")
            body, ctype = self.bodies[k % len(self.bodies)], "application/json"
            headers = {"X-Request-Id": rid, "Authorization": f"Bearer {self.key}"}
            if kind == "unauth" and k % 2:
                del headers["Authorization"]
            elif kind == "unauth":
                headers["Authorization"] = "Bearer not-a-key-0000000000000"
            elif kind == "malformed":
                body, ctype = MALFORMED[k % len(MALFORMED)]
            headers["Content-Type"] = ctype
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=self.ctx)
            try:
                conn.request("POST", "/invocations", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                self._count(kind, resp.status, rid)
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with self.tally.lock:
                    self.tally.requests += 1
                    self.tally.failed.append(f"{kind} {rid}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = None
            rest = period - (time.monotonic() - started)
            if rest > 0:
                self.stop.wait(rest)
        if conn is not None:
            conn.close()

    def _count(self, kind: str, status: int, rid: str) -> None:
        t = self.tally
        with t.lock:
            t.requests += 1
            if status == 429:
                t.rate_limited += 1
            if kind == "unauth":
                t.unauth_sent += 1
                t.unauth_rejected += status == 401
            elif kind == "malformed":
                t.malformed_sent += 1
                t.malformed_4xx += 400 <= status < 500 and status not in (401, 429)
                if status >= 500:
                    t.failed.append(f"malformed {rid}: {status}")
            elif status >= 500 or status == 401:
                t.failed.append(f"good {rid}: {status}")
            if 200 <= status < 300:
                t.answered.add(rid)


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def _measure(endpoint) -> tuple[float, float]:
    """RSS (MB) of the live slot's servers and of HAProxy's processes."""
    from mlops_tasks.deploy.processes import session_members
    from mlops_tasks.deploy.targets import get_target

    target = get_target("local", endpoint)
    live = max(("blue", "green"), key=lambda c: target.traffic.weights().get(c, 0))
    master = target.router_master_pid()
    return _rss_mb(target.slot_status(live).pids), _rss_mb(session_members(master) if master else [])


def _setup(root: Path):
    from mlops_tasks.demo import TARGET, make_churn_data
    from mlops_tasks.deploy.apikeys import new_key
    from mlops_tasks.deploy.models import EndpointSecurity, EndpointSpec
    from mlops_tasks.settings import MlflowConfig, resolve_mlflow_config
    from mlops_tasks.tracking import ensure_experiment
    from tests.conftest import free_port
    from tests.deploy_support import body_for, features, make_pipeline, register_version
    from tests.mlflow_support import fluent_mlflow
    from tests.tls_support import CertAuthority, write_keys_file

    cfg = MlflowConfig(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
        experiment_name="soak",
    )
    frame = make_churn_data(2000, seed=7)
    x, y = features(frame), frame[TARGET]
    resolved = resolve_mlflow_config(cfg)
    with fluent_mlflow(resolved) as client:
        exp = ensure_experiment(client, resolved)
        v1 = register_version(client, exp, "soak-churn", make_pipeline(1.0).fit(x, y), x)
        v2 = register_version(client, exp, "soak-churn", make_pipeline(0.2).fit(x, y), x)
    ca = CertAuthority()
    cert, key = ca.issue().write(root / "tls", "server")
    keys = {"load-a": new_key(), "load-b": new_key(), "victim": new_key()}
    keys_file = write_keys_file(root, keys)
    security = EndpointSecurity(
        api_keys=True,
        api_keys_file=str(keys_file),
        rate_limit=1000,
        tls_cert_file=str(cert),
        tls_key_file=str(key),
    )
    endpoint = EndpointSpec(name="soak", port=free_port(), preview_port=free_port(), security=security)
    bodies = [body_for(x.iloc[[i]]) for i in range(300)]
    return cfg, endpoint, keys, bodies, ca, x.tail(50), (v1, v2)


def _canary_and_rollback(endpoint, cfg, smoke, version, events: list[str]) -> None:
    """Canary-deploy ``version``; once it succeeded (old slot kept warm), roll back by hand."""
    from mlops_tasks.deploy import RolloutSpec, deploy_blue_green, rollback_deployment

    live = threading.Event()
    outcome: list[str] = []

    def deploy() -> None:
        spec = RolloutSpec(strategy="canary", canary_percent=10, bake_seconds=5, termination_wait_s=30)
        try:
            record = deploy_blue_green(
                "soak-churn",
                version,
                endpoint=endpoint,
                rollout=spec,
                target="local",
                smoke_rows=smoke,
                mlflow_config=cfg,
                listener=lambda r: live.set() if r.timeline[-1].step == "succeeded" else None,
            )
            outcome.append(record.outcome)
        except Exception as exc:
            outcome.append(f"failed: {type(exc).__name__}: {exc}")
        live.set()

    deployer = threading.Thread(target=deploy, daemon=True)
    deployer.start()
    live.wait(900)
    try:
        rollback_deployment(endpoint.name, mlflow_config=cfg, lock_timeout_s=60)
        events.append("canary live, rolled back")
    except Exception as exc:  # reported, and the run goes on
        events.append(f"rollback failed: {type(exc).__name__}: {exc}")
    deployer.join(120)
    events.append(f"canary deploy {outcome[0] if outcome else 'still running'}")


def _in_background(threads: list[threading.Thread], fn, *args) -> None:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    threads.append(thread)


def _rotate(endpoint, ca, root: Path) -> None:
    from mlops_tasks.deploy.access import rotate_certificate

    cert, key = ca.issue().write(root / "tls", "rotated")
    rotate_certificate(endpoint.name, cert_file=str(cert), key_file=str(key))


def _revoke(endpoint, victim: Client) -> None:
    """The victim's connection stops using its key, then the key is revoked."""
    from mlops_tasks.deploy.access import revoke_api_key

    victim.stop.set()
    victim.join(35)
    revoke_api_key(endpoint.name, "victim")


def _stop_live(endpoint) -> None:
    """Move traffic away from the live slot (detach it), then SIGTERM its servers and wait."""
    from mlops_tasks.deploy.processes import terminate
    from mlops_tasks.deploy.targets import get_target

    target = get_target("local", endpoint)
    live = max(("blue", "green"), key=lambda c: target.traffic.weights().get(c, 0))
    pids = target.slot_status(live).pids
    target.traffic.detach(live)
    terminate(pids, 30)


def _log_figures(endpoint, answered: set[str]) -> tuple[int, int]:
    from mlops_tasks.deploy.targets import get_target
    from mlops_tasks.serving import read_prediction_log

    log = read_prediction_log(str(get_target("local", endpoint).folder / "prediction-log"))
    ids = log["request_id"][log["request_id"].str.startswith("soak-")]
    return len(ids), int(ids.isin(answered).sum())


def run(seconds: float, connections: int, rate: float, share: float) -> dict[str, float]:
    from mlops_tasks.deploy import deploy_blue_green, stop_endpoint
    from mlops_tasks.deploy.models import RolloutSpec

    root = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    os.environ["MLOPS_STATE_DIR"] = str(root / "state")
    cfg, endpoint, keys, bodies, ca, smoke, (v1, v2) = _setup(root)
    fast = RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0)
    deploy_blue_green(
        "soak-churn", v1, endpoint=endpoint, rollout=fast, target="local", smoke_rows=smoke, mlflow_config=cfg
    )
    tally = Tally()
    names = ["load-a", "load-b"]
    clients = [
        Client(i, endpoint.port, keys[names[i % 2]], bodies, rate, tally, share) for i in range(connections)
    ]
    victim = Client(connections, endpoint.port, keys["victim"], bodies, 5.0, tally, 0.0)
    events: list[str] = []
    background: list[threading.Thread] = []
    try:
        started = time.monotonic()
        for c in [*clients, victim]:
            c.start()
        first_rss_at = min(60.0, seconds / 4)
        todo = [
            (first_rss_at, "rss", None),
            (
                0.3 * seconds,
                "canary",
                lambda: _in_background(background, _canary_and_rollback, endpoint, cfg, smoke, v2, events),
            ),
            (0.5 * seconds, "rotate", lambda: _rotate(endpoint, ca, root)),
            (0.6 * seconds, "revoke", lambda: _revoke(endpoint, victim)),
        ]
        rss_start = router_start = 0.0
        for at, what, action in sorted(todo, key=lambda t: t[0]):
            time.sleep(max(0.0, started + at - time.monotonic()))
            if what == "rss":
                rss_start, router_start = _measure(endpoint)
            else:
                assert action is not None
                action()
                events.append(what)
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        for thread in background:  # the canary and its rollback finish under load (a short run lasts longer)
            thread.join(600)
        rss_end, router_end = _measure(endpoint)
        elapsed = time.monotonic() - started
        for c in clients:
            c.stop.set()
        for c in clients:
            c.join(35)
        _stop_live(endpoint)
        time.sleep(1.0)
        log_rows, matched = _log_figures(endpoint, tally.answered)
    finally:
        stop_endpoint(endpoint.name)
        shutil.rmtree(root, ignore_errors=True)
    for line in tally.failed[:5]:
        print(f"failed: {line}", file=sys.stderr)
    print(f"events: {', '.join(events)}", file=sys.stderr)
    return {
        "seconds": round(elapsed),
        "requests": tally.requests,
        "failed": len(tally.failed),
        "unauthenticated_sent": tally.unauth_sent,
        "unauthenticated_rejected": tally.unauth_rejected,
        "malformed_sent": tally.malformed_sent,
        "malformed_4xx": tally.malformed_4xx,
        "rate_limited": tally.rate_limited,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "router_rss_start_mb": router_start,
        "router_rss_end_mb": router_end,
        "log_rows": log_rows,
        "log_rows_matched": matched,
        "answered_rows": len(tally.answered),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600.0, help="load duration (default 600)")
    parser.add_argument("--connections", type=int, default=10, help="keep-alive connections")
    parser.add_argument("--rate", type=float, default=16.0, help="requests/s per connection at most")
    parser.add_argument(
        "--share", type=float, default=0.05, help="share unauthenticated, and again malformed"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.disable(logging.WARNING)  # rollout progress and library warnings stay out of the output
    warnings.simplefilter("ignore")
    figures = run(args.seconds, args.connections, args.rate, args.share)
    rps = figures["requests"] / max(figures["seconds"], 1)
    print(f"requests/s: {rps:.1f}", file=sys.stderr)
    line = "soak: " + " ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
    )
    sys.stderr.flush()
    print(line, flush=True)
    os._exit(0)  # nothing after the figures line, not even interpreter shutdown noise


if __name__ == "__main__":
    raise SystemExit(main())
