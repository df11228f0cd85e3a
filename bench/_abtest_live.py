"""The live part of bench/abtest.py: a real endpoint with two variants under keep-alive load.

Loopback only, a temporary state folder and MLflow store: two versions of a churn model
are registered, version 1 is deployed (local target: model-server processes behind
HAProxy), then an A/B test of version 2 starts (sticky by ``X-Subject-Id``, 50/50, primary
outcome ``rated``). Eight keep-alive connections send requests for a stream of subjects
(1-10 requests each, no retries) while outcomes are drawn from a truth in which B is
better (rated 30 % under A, 50 % under B) and written to the outcomes file. The
evaluation the ``ab-evaluate`` deployment runs hourly (:func:`mlops_tasks.abtest.control.evaluate_test`)
runs every few seconds here until it concludes; on ``B_better`` it promotes B through the
blue-green machinery while the load goes on. Counted: every request without a 200 answer
(connection errors included) is a failed request; ``winner_live`` is true when every
answer after the promotion came from the winner's version.
"""

from __future__ import annotations

import http.client
import itertools
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRUTH = {"A": 0.30, "B": 0.50}


@dataclass
class Load:
    """Keep-alive connections sending each subject's 1-10 requests; what they saw."""

    port: int
    bodies: list[bytes]
    connections: int = 8
    rate: float = 40.0
    answers: list[tuple[float, str, int, str, str]] = field(
        default_factory=list
    )  # t, subject, status, variant, version
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(14)
        self._subjects = ((f"rider-{i}", int(rng.integers(1, 11))) for i in itertools.count())

    def start(self) -> None:
        for i in range(self.connections):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(40)

    def _run(self, i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        period = 1.0 / self.rate
        while not self._stop.is_set():
            with self._lock:
                subject, n = next(self._subjects)
            for k in range(n):
                started = time.monotonic()
                try:
                    conn.request(
                        "POST",
                        "/invocations",
                        body=self.bodies[(i + k) % len(self.bodies)],
                        headers={"Content-Type": "application/json", "X-Subject-Id": subject},
                    )
                    resp = conn.getresponse()
                    resp.read()
                    seen = (time.monotonic(), subject, resp.status, resp.getheader("X-Variant", ""),
                            resp.getheader("X-Model-Version", ""))  # fmt: skip
                    with self._lock:
                        self.answers.append(seen)
                except (OSError, http.client.HTTPException) as exc:
                    with self._lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                rest = period - (time.monotonic() - started)
                if rest > 0:
                    self._stop.wait(rest)
        conn.close()


def _outcomes(load: Load, drawn: dict[str, int], rng: np.random.Generator, path: Path) -> None:
    """Draw (once) the outcome of every subject seen so far, from the truth of its variant."""
    with load._lock:
        seen = [(a[1], a[3]) for a in load.answers if a[2] == 200 and a[3]]
    for subject, variant in seen:
        if subject not in drawn:
            drawn[subject] = int(rng.random() < TRUTH[variant])
    pd.DataFrame({"subject": list(drawn), "rated": list(drawn.values())}).to_csv(path, index=False)


def run_live(kind: str = "local", timeout_s: float = 300.0) -> dict[str, Any]:
    """Live figures on target ``kind``: ``live_verdict``, ``winner_live``, ``failed_requests``, details."""
    from mlops_tasks.abtest import AbSpec
    from mlops_tasks.abtest.control import OutcomeSource, evaluate_test, start_test
    from mlops_tasks.demo import TARGET, make_churn_data
    from mlops_tasks.deploy import EndpointSpec, RolloutSpec, deploy_blue_green, stop_endpoint
    from mlops_tasks.settings import MlflowConfig, resolve_mlflow_config
    from mlops_tasks.tracking import ensure_experiment
    from tests.conftest import free_port
    from tests.deploy_support import body_for, features, make_pipeline, register_version
    from tests.mlflow_support import fluent_mlflow

    root = Path(tempfile.mkdtemp(prefix="bench-abtest-"))
    os.environ["MLOPS_STATE_DIR"] = str(root / "state")
    cfg = MlflowConfig(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                       artifact_location=(root / "artifacts").as_uri(), experiment_name="bench")  # fmt: skip
    frame = make_churn_data(2000, seed=5)
    x, y = features(frame), frame[TARGET]
    resolved = resolve_mlflow_config(cfg)
    with fluent_mlflow(resolved) as client:
        exp = ensure_experiment(client, resolved)
        v1 = register_version(client, exp, "bench-churn", make_pipeline(1.0).fit(x, y), x)
        v2 = register_version(client, exp, "bench-churn", make_pipeline(0.1).fit(x, y), x)
    endpoint = EndpointSpec(name=f"bench-abtest-{kind}", port=free_port(), preview_port=free_port())
    deploy_blue_green(
        "bench-churn",
        v1,
        endpoint=endpoint,
        target=kind,
        smoke_rows=x.tail(50),
        mlflow_config=cfg,
        rollout=RolloutSpec(strategy="all_at_once", bake_seconds=0, termination_wait_s=0),
    )
    load = Load(endpoint.port, [body_for(x.iloc[[i]]) for i in range(300)])
    outcomes = root / "outcomes.csv"
    spec = AbSpec(primary_metric="rated", min_effect=0.1, min_samples=100)
    evaluation = None
    try:
        start_test("bench-churn", v2, spec, OutcomeSource(uri=str(outcomes), key="subject"),
                   endpoint=endpoint, smoke_rows=x.tail(50), mlflow_config=cfg, target=kind)  # fmt: skip
        load.start()
        rng, drawn = np.random.default_rng(7), {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(3.0)
            _outcomes(load, drawn, rng, outcomes)
            evaluation = evaluate_test(endpoint.name, mlflow_config=cfg)
            print(
                f"live: {len(drawn)} subjects, {evaluation.verdict.verdict} ({evaluation.reason})",
                file=sys.stderr,
            )
            if evaluation.action != "none":
                break
        concluded = time.monotonic()
        time.sleep(5.0)  # load goes on after the promotion
        load.stop()
    finally:
        load.stop()
        stop_endpoint(endpoint.name)
        shutil.rmtree(root, ignore_errors=True)
    after = [a for a in load.answers if a[0] > concluded]
    winner = evaluation.winner if evaluation else None
    winner_version = str(v2 if winner == "B" else v1)
    failed = len(load.failures) + sum(1 for a in load.answers if a[2] != 200)
    return {
        "live_verdict": evaluation.verdict.verdict if evaluation else "keep_running",
        "winner_live": "true" if winner and after and all(a[4] == winner_version for a in after) else "false",
        "failed_requests": str(failed),
        "live_requests": len(load.answers) + len(load.failures),
        "live_subjects": len(drawn),
    }
