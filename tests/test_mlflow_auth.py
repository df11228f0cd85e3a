"""MLflow credentials from our settings reach a real server through the request-auth provider.

A real ``mlflow server`` sits behind a loopback proxy that answers 401 to any request (REST or
artifact upload) without the expected bearer token, like an authenticating gateway. The token
travels only in the MLflow settings: never in the process environment.
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from conftest import start_mlflow_server
from pydantic import SecretStr

from mlops_tasks.data import DatasetInfo, fingerprint_frame
from mlops_tasks.mlflow_auth import SettingsAuth, authorization_for
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tracking import connect, load_sklearn_model
from mlops_tasks.training import TrainingSpec, train_model

TOKEN = "s3cret-token"


@contextmanager
def token_gateway(upstream: str) -> Iterator[tuple[str, list[tuple[str, str, bool]]]]:
    """A proxy to ``upstream`` that requires ``Bearer TOKEN`` except on /health; logs requests."""
    seen: list[tuple[str, str, bool]] = []
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            seen.append((self.command, self.path, authorized))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not authorized and not self.path.startswith("/health"):
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "authorization"}}
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            conn.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-auth")
    with start_mlflow_server(root, artifacts_destination=str(root / "artifacts")) as url:
        yield url


def test_token_in_settings_reaches_the_server_and_never_the_environment(mlflow_url, churn, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_AUTH", raising=False)
    info = DatasetInfo(
        uri="file:///data/churn.csv",
        name="churn",
        format="csv",
        rows=len(churn),
        columns=list(churn.columns),
        fingerprint=fingerprint_frame(churn),
    )
    with token_gateway(mlflow_url) as (gateway, seen):
        # without credentials the gateway refuses
        with pytest.raises(Exception, match="401|Unauthorized|UNAUTHENTICATED|unauthenticated"):
            connect(MlflowConfig(tracking_uri=gateway))[1].search_experiments()
        config = MlflowConfig(tracking_uri=gateway, experiment_name="auth", token=SecretStr(TOKEN))
        trained = train_model(
            churn, TrainingSpec(target="churned", params={"max_iter": 300}), data=info, mlflow_config=config
        )
        resolved, client = connect(config)
        assert client.get_run(trained.run_id).info.status == "FINISHED"
        assert len(load_sklearn_model(resolved, trained.model_uri).predict(churn.head(3))) == 3
        assert "MLFLOW_TRACKING_TOKEN" not in os.environ
        assert TOKEN not in "".join(os.environ.values())
        # REST calls and artifact uploads/downloads all carried the token
        assert any(method == "PUT" and "mlflow-artifacts" in path and ok for method, path, ok in seen)
        assert any("mlflow-artifacts" in path and method == "GET" and ok for method, path, ok in seen)


def test_credentials_are_sent_only_to_their_server():
    from mlops_tasks.mlflow_auth import register_credentials
    from mlops_tasks.settings import resolve_mlflow_config

    register_credentials(
        resolve_mlflow_config(
            MlflowConfig(
                tracking_uri="http://mlflow-a.invalid:5000/prefix", username="ann", password=SecretStr("pw")
            )
        )
    )
    header = authorization_for("http://mlflow-a.invalid:5000/prefix/api/2.0/mlflow/runs/get")
    assert header is not None and header.startswith("Basic ")
    assert authorization_for("http://mlflow-a.invalid:5000/prefixed/api") is None
    assert authorization_for("http://mlflow-b.invalid:5000/prefix/api") is None

    class Request:
        url = "http://mlflow-b.invalid:5000/api"
        headers: dict[str, str] = {"Authorization": "Bearer from-mlflow-env"}  # noqa: RUF012

    assert SettingsAuth()(Request()).headers["Authorization"] == "Bearer from-mlflow-env"
