"""The end of ``make demo``: demo traffic to the live endpoint, then a drift check per window.

Sends an undrifted window, then a drifted one (``make_churn_data(drift=...)``) to
``POST /invocations`` of the endpoint, each request with its own ``X-Request-ID``;
the model servers log what they saw. Then :func:`~mlops_tasks.flows.monitoring.drift_check` runs
on each window of the prediction log (explicit ``[start, end)`` bounds, so the two
windows do not overlap) and the verdicts and HTML reports are printed. The drifted
window's ground truth is written as a labels file, ready for the retrain pipeline::

    python -m mlops_tasks.flows.demo_traffic --endpoint churn --port 8000 --drift 0.9
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from mlops_tasks.demo import TARGET, make_churn_data
from mlops_tasks.errors import MLOpsError, ServiceUnavailableError
from mlops_tasks.flows.entry import prepare_command
from mlops_tasks.monitoring import DriftReport, DriftSettings, DriftWindow

__all__ = [
    "TrafficWindow",
    "main",
    "send_demo_traffic",
    "send_window",
]


class TrafficWindow(BaseModel):
    """One window of demo traffic: its bounds, how many rows were answered, where its labels are."""

    window: DriftWindow
    rows: int
    requests: int
    labels_uri: str


def send_window(
    host: str, port: int, frame: pd.DataFrame, *, prefix: str, batch: int = 50, timeout: float = 30.0
) -> tuple[int, pd.DataFrame]:
    """POST ``frame`` (target dropped) in batches over one keep-alive connection.

    Returns:
        The number of requests and the labels keyed like the prediction log
        (``request_id``, ``row``, ``label``).

    Raises:
        MLOpsError: The endpoint did not answer 200.
        ServiceUnavailableError: Nothing listens on ``host:port``.

    Example:
        ```python
        requests, labels = send_window("127.0.0.1", 8000, make_churn_data(500), prefix="calm")
        ```
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    labels = []
    requests = 0
    try:
        for i, start in enumerate(range(0, len(frame), batch)):
            requests += 1
            chunk = frame.iloc[start : start + batch]
            request_id = f"{prefix}-{i}"
            features = chunk.drop(columns=[TARGET], errors="ignore")
            body = {"dataframe_split": json.loads(features.to_json(orient="split", index=False))}
            conn.request(
                "POST",
                "/invocations",
                body=json.dumps(body),
                headers={"Content-Type": "application/json", "X-Request-ID": request_id},
            )
            response = conn.getresponse()
            text = response.read()
            if response.status != 200:
                raise MLOpsError(
                    f"http://{host}:{port}/invocations answered {response.status}: {text[:300]!r}"
                )
            if TARGET in chunk.columns:
                labels.append(
                    pd.DataFrame(
                        {
                            "request_id": request_id,
                            "row": range(len(chunk)),
                            "label": chunk[TARGET].to_numpy(),
                        }
                    )
                )
    except OSError as exc:
        raise ServiceUnavailableError(
            f"Cannot reach the endpoint http://{host}:{port}: {exc}; is it running "
            "(make demo / python -m mlops_tasks.flows.deployment)?"
        ) from exc
    finally:
        conn.close()
    return requests, pd.concat(labels, ignore_index=True) if labels else pd.DataFrame()


def send_demo_traffic(
    host: str, port: int, *, rows: int, seed: int, drift: float, out_dir: Path, settle_s: float = 0.6
) -> list[TrafficWindow]:
    """Send an undrifted window then a drifted one; return both windows with their labels files.

    Example:
        ```python
        calm, moved = send_demo_traffic("127.0.0.1", 8000, rows=1000, seed=7, drift=0.9,
                                        out_dir=Path(".mlops/demo"))
        ```
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    windows = []
    for name, frame in (
        ("undrifted", make_churn_data(rows, seed=seed + 101)),
        ("drifted", make_churn_data(rows, seed=seed + 202, drift=drift)),
    ):
        start = datetime.now(UTC)
        requests, labels = send_window(host, port, frame, prefix=f"demo-{name}-{int(start.timestamp())}")
        # The log's timestamp is when an answer was computed: a pause keeps each phase in its window.
        time.sleep(settle_s)
        path = out_dir / f"labels-{name}.csv"
        labels.to_csv(path, index=False)
        windows.append(
            TrafficWindow(
                window=DriftWindow(start=start, end=datetime.now(UTC)),
                rows=len(frame),
                requests=requests,
                labels_uri=str(path),
            )
        )
    return windows


def _connect_prefect() -> None:
    """Reach the Prefect API once (starting the ephemeral one when no server is configured)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.api_healthcheck()


def main(argv: list[str] | None = None) -> int:
    """Command line: traffic, two drift checks, verdicts and report paths printed."""
    from mlops_tasks.deploy.state import endpoint_dir
    from mlops_tasks.flows.monitoring import DriftCheckParams, drift_check
    from mlops_tasks.settings import state_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", default="churn-classifier")
    parser.add_argument("--endpoint", default="churn")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--rows", type=int, default=1000, help="rows per window")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drift", type=float, default=0.9, help="drift of the second window (0..1)")
    parser.add_argument("--flush-wait", type=float, default=1.5, help="seconds for the servers to flush")
    args = parser.parse_args(argv)
    prepare_command("python -m mlops_tasks.flows.demo_traffic")

    log = str(endpoint_dir(args.endpoint) / "prediction-log")
    # The Prefect API (ephemeral by default: several seconds to start) comes up while traffic flows.
    prefect_up = threading.Thread(target=_connect_prefect, name="connect-prefect", daemon=True)
    prefect_up.start()
    try:
        windows = send_demo_traffic(
            args.host,
            args.port,
            rows=args.rows,
            seed=args.seed,
            drift=args.drift,
            out_dir=state_dir() / "demo",
        )
        time.sleep(args.flush_wait)
        prefect_up.join()
        reports: list[DriftReport] = []
        for w in windows:
            reports.append(
                drift_check(
                    DriftCheckParams(
                        model_name=args.model_name,
                        prediction_log=log,
                        start=w.window.start,
                        end=w.window.end,
                        settings=DriftSettings(min_rows=min(100, args.rows)),
                    )
                )
            )
    except MLOpsError as exc:
        print(f"demo traffic failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for label, w, report in zip(
        ("undrifted", f"drifted (drift={args.drift:g})"), windows, reports, strict=True
    ):
        print(
            f"drift check, {label} window {w.window.describe()}: {report.status} "
            f"({report.current_rows} rows): {report.reason}"
        )
        print(f"  Evidently report: {report.html_uri or '(none)'}")
    if reports[-1].status == "drift":
        print("mlops.drift.detected was emitted for the drifted window; retrain on it with:")
        print(
            f"  python -m mlops_tasks.flows.retrain --model-name {args.model_name} "
            f"--labels {windows[-1].labels_uri} --prediction-log {log} "
            f"--endpoint {args.endpoint} --port {args.port}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
