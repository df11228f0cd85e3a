"""Airflow connections as the environment of the mlops-tasks stage.

- **MLflow** (``mlflow_conn_id``): Airflow has no MLflow connection type, so an ``http``
  connection (the HTTP provider's type; any type works) gives the tracking server: ``schema``
  (``http`` or ``https``), ``host``, ``port``; ``login``/``password`` for basic auth; extra
  ``{"token": ..., "experiment_name": ..., "registry_uri": ...}``. A host that already holds a
  URI (``http://mlflow:5000``, ``sqlite:////data/mlflow.db``) is used as it is.
- **S3** (``aws_conn_id``): the Amazon provider's ``aws`` type: ``login`` = access key id,
  ``password`` = secret key, extra ``{"endpoint_url": ..., "region_name": ...,
  "aws_session_token": ...}`` (an S3-compatible server such as MinIO by ``endpoint_url``).

The settings reach the stage as the variables mlops-tasks and MLflow read
(``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_USERNAME``, ``AWS_ACCESS_KEY_ID``,
``MLOPS_S3_ENDPOINT_URL``...), never on the command line nor in XCom.
"""

from __future__ import annotations

from typing import Any

__all__ = ["aws_env", "connection_env", "mlflow_env"]


def _extra(conn: Any) -> dict[str, Any]:
    extra = getattr(conn, "extra_dejson", None)
    return dict(extra) if isinstance(extra, dict) else {}


def mlflow_env(conn: Any) -> dict[str, str]:
    """The stage's MLflow variables from an Airflow connection.

    Args:
        conn: An Airflow ``Connection`` (``host``, ``schema``, ``port``, ``login``, ``password``,
            ``extra_dejson``).

    Returns:
        ``MLFLOW_TRACKING_URI`` and, when set, credentials, experiment and registry.
    """
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"MLflow connection {conn.conn_id!r} has no host; set the tracking server's host.")
    if "://" in host:
        uri = host
    else:
        scheme = conn.schema or "http"
        uri = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    env = {"MLFLOW_TRACKING_URI": uri}
    extra = _extra(conn)
    if conn.login:
        env["MLFLOW_TRACKING_USERNAME"] = conn.login
    if conn.password:
        env["MLFLOW_TRACKING_PASSWORD"] = conn.password
    for key, name in (
        ("token", "MLFLOW_TRACKING_TOKEN"),
        ("experiment_name", "MLFLOW_EXPERIMENT_NAME"),
        ("registry_uri", "MLFLOW_REGISTRY_URI"),
    ):
        if extra.get(key):
            env[name] = str(extra[key])
    return env


def aws_env(conn: Any) -> dict[str, str]:
    """The stage's S3 variables from an Airflow ``aws`` connection.

    Args:
        conn: An Airflow ``Connection``.

    Returns:
        ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and, when set, the endpoint, region and
        session token (the endpoint also as ``MLFLOW_S3_ENDPOINT_URL`` for MLflow's artifacts).
    """
    env: dict[str, str] = {}
    extra = _extra(conn)
    if conn.login:
        env["AWS_ACCESS_KEY_ID"] = conn.login
    if conn.password:
        env["AWS_SECRET_ACCESS_KEY"] = conn.password
    endpoint = extra.get("endpoint_url") or (extra.get("service_config", {}).get("s3", {}) or {}).get(
        "endpoint_url"
    )
    if endpoint:
        env["MLOPS_S3_ENDPOINT_URL"] = str(endpoint)
        env["MLFLOW_S3_ENDPOINT_URL"] = str(endpoint)
    if extra.get("region_name"):
        env["AWS_DEFAULT_REGION"] = str(extra["region_name"])
    if extra.get("aws_session_token"):
        env["AWS_SESSION_TOKEN"] = str(extra["aws_session_token"])
    return env


def connection_env(mlflow_conn_id: str | None, aws_conn_id: str | None) -> dict[str, str]:
    """The variables of both connections, looked up through Airflow (secrets backends included).

    Args:
        mlflow_conn_id: The MLflow connection's id, or ``None``.
        aws_conn_id: The S3 connection's id, or ``None``.

    Returns:
        The variables to add to the stage's environment.
    """
    from airflow.sdk import BaseHook

    env: dict[str, str] = {}
    if mlflow_conn_id:
        env.update(mlflow_env(BaseHook.get_connection(mlflow_conn_id)))
    if aws_conn_id:
        env.update(aws_env(BaseHook.get_connection(aws_conn_id)))
    return env
