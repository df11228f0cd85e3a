"""Helpers of the deployment tests and bench: registered versions, bad models, a load client.

The load client is the one the issue asks for: a fixed number of keep-alive
connections (``http.client`` in threads) that POST ``/invocations`` at a bounded rate
and never retry. Each answer is recorded with the slot and version headers; a
connection error, reset or timeout is a failure, a 5xx the router generated (no
``X-Served-By``) is a failure, and a 5xx a slot answered itself is counted apart
(the injected error-spike fault).
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_tasks.demo import CATEGORICAL_FEATURES, NUMERIC_FEATURES, TARGET
from mlops_tasks.tracking import sklearn_model_requirements

# -- models -----------------------------------------------------------------------------------


def make_pipeline(c: float = 1.0):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        (
                            "num",
                            Pipeline([("fill", SimpleImputer()), ("scale", StandardScaler())]),
                            NUMERIC_FEATURES,
                        ),
                        (
                            "cat",
                            Pipeline(
                                [
                                    ("fill", SimpleImputer(strategy="most_frequent")),
                                    ("hot", OneHotEncoder(handle_unknown="ignore")),
                                ]
                            ),
                            CATEGORICAL_FEATURES,
                        ),
                    ]
                ),
            ),
            ("clf", LogisticRegression(C=c, max_iter=500)),
        ]
    )


class SpikeModel:
    """Answers big batches like ``inner`` but raises on batches of fewer than 3 rows.

    The smoke test (50 rows) and the server's warm-up (its 5-row input example) pass;
    live single-row requests get HTTP 500 from the slot: an error spike during bake.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict(self, x: Any) -> Any:
        if len(x) < 3:
            raise RuntimeError("injected fault: this model fails on small batches")
        return self.inner.predict(x)


class SleepyModel:
    """Takes an hour to deserialize where ``MLOPS_TEST_SLEEPY=1``: the slot never becomes healthy.

    (MLflow loads the model once while logging it; the variable is set only after that.)
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __setstate__(self, state: dict) -> None:
        import os

        if os.environ.get("MLOPS_TEST_SLEEPY") == "1":
            time.sleep(3600)
        self.__dict__.update(state)

    def predict(self, x: Any) -> Any:
        return self.inner.predict(x)


def register_version(
    client: Any, experiment_id: str, name: str, model: Any, frame: pd.DataFrame, *, pickled: bool = False
) -> int:
    """Log ``model`` (fitted) and register it as a new version whose gate passed."""
    import cloudpickle
    import mlflow
    from mlflow.models import infer_signature

    from mlops_tasks.training import skops_trusted_types as _skops_types

    example = frame.head(5)
    if pickled:
        cloudpickle.register_pickle_by_value(sys.modules[type(model).__module__])
    with mlflow.start_run(experiment_id=experiment_id):
        real = model.inner if hasattr(model, "inner") else model
        kwargs: dict[str, Any] = (
            {"serialization_format": "cloudpickle"}
            if pickled
            else {"skops_trusted_types": _skops_types(model)}
        )
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, real.predict(example)),
            input_example=example,
            registered_model_name=name,
            # listed, not inferred (MLflow's inference loads the model in a subprocess: seconds)
            pip_requirements=sklearn_model_requirements(real),
            **kwargs,
        )
    version = int(info.registered_model_version)
    client.set_model_version_tag(name, str(version), "mlops.gate.passed", "true")
    return version


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[TARGET])


def body_for(rows: pd.DataFrame) -> bytes:
    return json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}).encode()


# -- load client ------------------------------------------------------------------------------


@dataclass
class Answer:
    sent: float
    done: float
    status: int
    served_by: str
    version: str


@dataclass
class LoadResult:
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    router_errors: list[int] = field(default_factory=list)
    slot_errors: list[Answer] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.answers) + len(self.failures) + len(self.router_errors)

    @property
    def failed(self) -> int:
        """Connection-level failures and router errors (the zero-downtime figure)."""
        return len(self.failures) + len(self.router_errors)

    def versions_after(self, t: float) -> set[str]:
        return {a.version for a in self.answers if a.sent >= t and a.status == 200}

    def versions_between(self, t0: float, t1: float) -> set[str]:
        return {a.version for a in self.answers if t0 <= a.sent < t1 and a.status == 200}


class LoadClient:
    """``connections`` keep-alive clients, each at most ``rate`` requests/s, no retries.

    Example:
        ```python
        with LoadClient("127.0.0.1", 8000, bodies) as load:
            deploy(...)
        assert load.result.failed == 0
        ```
    """

    def __init__(
        self,
        host: str,
        port: int,
        bodies: list[bytes],
        connections: int = 8,
        rate: float = 40.0,
        timeout_s: float = 30.0,
        headers: dict[str, str] | None = None,
        ssl_context: Any = None,
    ) -> None:
        self.host, self.port, self.bodies = host, port, bodies
        #: Extra request headers (an API key); ``ssl_context``: connect over TLS with it.
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.ssl_context = ssl_context
        self.connections, self.rate, self.timeout_s = connections, rate, timeout_s
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> LoadClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for i in range(self.connections):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> LoadResult:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout_s + 5)
        return self.result

    def wait_answers(self, n: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.result.answers) < n and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self, i: int) -> None:
        conn: http.client.HTTPConnection | None = None
        period = 1.0 / self.rate
        k = i
        while not self._stop.is_set():
            body = self.bodies[k % len(self.bodies)]
            k += self.connections
            started = time.monotonic()
            if conn is None:
                conn = (
                    http.client.HTTPSConnection(
                        self.host, self.port, timeout=self.timeout_s, context=self.ssl_context
                    )
                    if self.ssl_context is not None
                    else http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
                )
            try:
                conn.request("POST", "/invocations", body=body, headers=self.headers)
                resp = conn.getresponse()
                resp.read()
                answer = Answer(
                    started,
                    time.monotonic(),
                    resp.status,
                    resp.getheader("X-Served-By") or "",
                    resp.getheader("X-Model-Version") or "",
                )
                with self._lock:
                    if resp.status >= 500 and not answer.served_by:
                        self.result.router_errors.append(resp.status)
                    elif resp.status >= 500:
                        self.result.slot_errors.append(answer)
                        self.result.answers.append(answer)
                    else:
                        self.result.answers.append(answer)
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.result.failures.append(f"{type(exc).__name__}: {exc} (sent at {started:.3f})")
                conn.close()
                conn = None
            rest = period - (time.monotonic() - started)
            if rest > 0:
                self._stop.wait(rest)
        if conn is not None:
            conn.close()


def first_time_only(load: LoadClient, version: str, timeout_s: float = 30.0) -> float | None:
    """Monotonic send time after which every answer came from ``version`` (None if never)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answers = list(load.result.answers)
        last_other = max((a.sent for a in answers if a.version != version), default=None)
        after = [a for a in answers if last_other is None or a.sent > last_other]
        if len(after) >= 20 and all(a.version == version for a in after):
            return after[0].sent
        time.sleep(0.05)
    return None


def np_equal(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))
