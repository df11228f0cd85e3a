"""Prometheus text-format metrics, kept in plain Python counters (no client library)."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import Any

#: Upper bounds (seconds) of the request latency histogram buckets.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Upper bounds of the micro-batch size histogram.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: Any) -> str:
    return ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())


class Histogram:
    """A cumulative-on-render histogram.

    Example:
        ```python
        h = Histogram((0.1, 1.0))
        h.observe(0.05)
        assert h.count == 1
        ```
    """

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Record one value."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def render(self, name: str, labels: str) -> list[str]:
        """Prometheus lines for this histogram."""
        sep = "," if labels else ""
        lines = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            lines.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        lines.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum{{{labels}}} {self.sum:.6f}")
        lines.append(f"{name}_count{{{labels}}} {self.count}")
        return lines


class ServerMetrics:
    """Counters of one server process, rendered as Prometheus text.

    Example:
        ```python
        m = ServerMetrics()
        m.request("/invocations", 200, 0.002, rows=1)
        text = m.render({"model_name": "churn", "model_version": "3"}, log_stats=None)
        assert 'status="200"' in text
        ```
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.rows_predicted = 0
        self.predict_errors = 0

    def request(self, endpoint: str, status: int, seconds: float | None = None, rows: int = 0) -> None:
        """Count one answered request; ``seconds`` feeds the latency histogram."""
        self.requests[(endpoint, status)] += 1
        if seconds is not None:
            self.latency.observe(seconds)
        self.rows_predicted += rows

    def render(self, labels: dict[str, str], log_stats: Any, extra: dict[str, float] | None = None) -> str:
        """The whole exposition text.

        Args:
            labels: Labels put on every series (model name and version).
            log_stats: The prediction log writer's ``LogStats`` (or ``None`` when disabled).
            extra: More gauges, name -> value.
        """
        base = _labels(**labels)
        sep = "," if base else ""
        out = [
            "# HELP mlops_serve_requests_total Requests answered, by endpoint and HTTP status.",
            "# TYPE mlops_serve_requests_total counter",
        ]
        for (endpoint, status), count in sorted(self.requests.items()):
            out.append(
                f"mlops_serve_requests_total{{{base}{sep}"
                f"{_labels(endpoint=endpoint, status=status)}}} {count}"
            )
        out += [
            "# HELP mlops_serve_request_duration_seconds Latency of /invocations requests.",
            "# TYPE mlops_serve_request_duration_seconds histogram",
            *self.latency.render("mlops_serve_request_duration_seconds", base),
            "# HELP mlops_serve_predict_batch_rows Rows per model predict call (micro-batches).",
            "# TYPE mlops_serve_predict_batch_rows histogram",
            *self.batch_size.render("mlops_serve_predict_batch_rows", base),
            "# HELP mlops_serve_rows_predicted_total Rows answered with a prediction.",
            "# TYPE mlops_serve_rows_predicted_total counter",
            f"mlops_serve_rows_predicted_total{{{base}}} {self.rows_predicted}",
            "# HELP mlops_serve_predict_errors_total Predict calls the model refused.",
            "# TYPE mlops_serve_predict_errors_total counter",
            f"mlops_serve_predict_errors_total{{{base}}} {self.predict_errors}",
        ]
        if log_stats is not None:
            written = log_stats.written_rows
            out += [
                "# HELP mlops_serve_prediction_log_rows_written_total Rows written to the sink.",
                "# TYPE mlops_serve_prediction_log_rows_written_total counter",
                f"mlops_serve_prediction_log_rows_written_total{{{base}}} {written}",
                "# HELP mlops_serve_prediction_log_rows_dropped_total Rows the log sink lost.",
                "# TYPE mlops_serve_prediction_log_rows_dropped_total counter",
                f"mlops_serve_prediction_log_rows_dropped_total{{{base}}} {log_stats.dropped_rows}",
                "# HELP mlops_serve_prediction_log_write_errors_total Failed log writes.",
                "# TYPE mlops_serve_prediction_log_write_errors_total counter",
                f"mlops_serve_prediction_log_write_errors_total{{{base}}} {log_stats.write_errors}",
            ]
        for name, value in (extra or {}).items():
            out.append(f"# TYPE {name} gauge")
            out.append(f"{name}{{{base}}} {value:g}")
        return "\n".join(out) + "\n"
