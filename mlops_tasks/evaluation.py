"""Evaluation on the holdout and the quality gate against the champion.

Metrics: classification ``accuracy``, ``f1``, ``roc_auc``, ``log_loss``;
regression ``rmse``, ``mae``, ``r2``; the same per segment value (slices).

The gate follows TFX / ``mlflow.models.MetricThreshold``: per metric an absolute
bound, and change bounds against the current ``champion`` evaluated on the
same holdout (``min_absolute_change``, ``min_relative_change``, in the metric's
better direction; negative values allow a bounded regression), plus per-slice
minimums. With no champion yet only absolute bounds apply.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_tasks.data import require_columns
from mlops_tasks.errors import ConfigurationError, EvaluationError, QualityGateError
from mlops_tasks.metrics import (
    CLASSIFICATION_METRICS,
    GREATER_IS_BETTER,
    REGRESSION_METRICS,
    TaskType,
    compute_metrics,
)
from mlops_tasks.registry_lookup import check_model_name, get_champion
from mlops_tasks.settings import MlflowConfig
from mlops_tasks.tracking import connect, load_sklearn_model
from mlops_tasks.training import TrainedModel

__all__ = [
    "CLASSIFICATION_METRICS",
    "GREATER_IS_BETTER",
    "REGRESSION_METRICS",
    "ChampionComparison",
    "EvaluationReport",
    "GateCheck",
    "MetricThreshold",
    "QualityGate",
    "SliceThreshold",
    "apply_gate",
    "compute_metrics",
    "evaluate_model",
    "plot_urls",
]

logger = logging.getLogger(__name__)


def _check_metric(name: str) -> str:
    if name not in GREATER_IS_BETTER:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(GREATER_IS_BETTER)}")
    return name


class MetricThreshold(BaseModel):
    """Bounds on one metric: absolute, and change against the champion.

    Changes are measured in the metric's better direction: for ``roc_auc``
    ``min_absolute_change=-0.01`` allows the candidate to be at most 0.01 worse
    than the champion; for ``log_loss`` it allows at most 0.01 higher loss.

    Example:
        ```python
        from mlops_tasks.evaluation import MetricThreshold
        MetricThreshold(metric="roc_auc", min_value=0.75, min_absolute_change=-0.01)
        ```
    """

    model_config = ConfigDict(frozen=True)

    metric: str = Field(..., description="Metric name, e.g. roc_auc or rmse.")
    min_value: float | None = Field(None, description="Candidate must be >= this.")
    max_value: float | None = Field(None, description="Candidate must be <= this.")
    min_absolute_change: float | None = Field(
        None, description="Improvement over the champion of at least this (may be negative)."
    )
    min_relative_change: float | None = Field(
        None, description="Relative improvement over the champion of at least this (0.01 = 1 %)."
    )

    @model_validator(mode="after")
    def _valid(self) -> MetricThreshold:
        _check_metric(self.metric)
        if all(
            v is None
            for v in (self.min_value, self.max_value, self.min_absolute_change, self.min_relative_change)
        ):
            raise ValueError(f"threshold on {self.metric!r} sets no bound")
        return self


class SliceThreshold(BaseModel):
    """A minimum (or maximum) a metric must meet in every segment value."""

    model_config = ConfigDict(frozen=True)

    metric: str = Field(..., description="Metric name.")
    min_value: float | None = Field(None, description="Every slice must be >= this.")
    max_value: float | None = Field(None, description="Every slice must be <= this.")

    @model_validator(mode="after")
    def _valid(self) -> SliceThreshold:
        _check_metric(self.metric)
        if self.min_value is None and self.max_value is None:
            raise ValueError(f"slice threshold on {self.metric!r} sets no bound")
        return self


class QualityGate(BaseModel):
    """Everything a candidate must meet to become ``challenger``.

    Example:
        ```python
        from mlops_tasks.evaluation import MetricThreshold, QualityGate, SliceThreshold
        gate = QualityGate(
            thresholds=[MetricThreshold(metric="roc_auc", min_value=0.75, min_absolute_change=-0.01)],
            slice_thresholds=[SliceThreshold(metric="accuracy", min_value=0.6)],
        )
        ```
    """

    model_config = ConfigDict(frozen=True)

    thresholds: list[MetricThreshold] = Field(default_factory=list)
    slice_thresholds: list[SliceThreshold] = Field(default_factory=list)
    min_slice_rows: int = Field(
        30, ge=1, description="Slices with fewer holdout rows are reported but not gated."
    )


class GateCheck(BaseModel):
    """One check of the gate and its outcome."""

    check: str = Field(..., description="e.g. 'roc_auc >= 0.75' or 'roc_auc change vs champion'.")
    scope: str = Field(..., description="'overall', 'champion' or 'slice country=US'.")
    observed: float | None
    bound: float | None
    passed: bool
    reason: str


class ChampionComparison(BaseModel):
    """The champion's identity and its metrics on the same holdout."""

    version: int
    run_id: str | None
    metrics: dict[str, float]


class EvaluationReport(BaseModel):
    """Holdout metrics, slices, champion comparison and the gate verdict."""

    run_id: str
    model_name: str | None
    task: TaskType
    holdout_rows: int
    metrics: dict[str, float]
    segment_column: str | None = None
    slice_metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    slice_rows: dict[str, int] = Field(default_factory=dict)
    champion: ChampionComparison | None = None
    champion_note: str | None = None
    checks: list[GateCheck] = Field(default_factory=list)
    passed: bool
    plots: list[str] = Field(
        default_factory=list, description="Artifact paths of the plots logged on the run (plots/*.png)."
    )

    @property
    def failed_reasons(self) -> list[str]:
        """The reasons of every failed check."""
        return [c.reason for c in self.checks if not c.passed]

    def to_markdown(self) -> str:
        """Tables for a Prefect artifact: metrics vs champion, slices, gate checks."""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"### Quality gate {verdict} (run `{self.run_id}`, {self.holdout_rows} holdout rows)", ""]
        champ = self.champion
        header = "| metric | candidate |" + (f" champion v{champ.version} |" if champ else "")
        lines += [header, "|---|---|" + ("---|" if champ else "")]
        for name, value in self.metrics.items():
            row = f"| {name} | {value:.4f} |"
            if champ:
                other = champ.metrics.get(name)
                row += f" {other:.4f} |" if other is not None else " - |"
            lines.append(row)
        if self.champion_note:
            lines += ["", f"_{self.champion_note}_"]
        if self.slice_metrics:
            names = sorted({m for values in self.slice_metrics.values() for m in values})
            lines += ["", f"**Slices by `{self.segment_column}`**", ""]
            lines += ["| slice | rows | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
            for key, values in self.slice_metrics.items():
                cells = " | ".join(f"{values[n]:.4f}" if n in values else "-" for n in names)
                lines.append(f"| {key} | {self.slice_rows.get(key, 0)} | {cells} |")
        if self.checks:
            lines += ["", "| check | scope | observed | bound | result |", "|---|---|---|---|---|"]
            for c in self.checks:
                obs = "-" if c.observed is None else f"{c.observed:.4f}"
                bound = "-" if c.bound is None else f"{c.bound:.4f}"
                lines.append(
                    f"| {c.check} | {c.scope} | {obs} | {bound} | {'pass' if c.passed else 'FAIL'} |"
                )
        return "\n".join(lines)


def _bound_checks(
    metric: str, value: float | None, min_value: float | None, max_value: float | None, scope: str
) -> list[GateCheck]:
    checks = []
    for bound, op in ((min_value, ">="), (max_value, "<=")):
        if bound is None:
            continue
        if value is None:
            checks.append(
                GateCheck(
                    check=f"{metric} {op} {bound}",
                    scope=scope,
                    observed=None,
                    bound=bound,
                    passed=False,
                    reason=f"{metric} could not be computed for {scope} (e.g. a single class)",
                )
            )
            continue
        ok = value >= bound if op == ">=" else value <= bound
        checks.append(
            GateCheck(
                check=f"{metric} {op} {bound}",
                scope=scope,
                observed=value,
                bound=bound,
                passed=ok,
                reason=f"{scope} {metric} {value:.4f} {'meets' if ok else 'misses'} {op} {bound}",
            )
        )
    return checks


def _change_checks(t: MetricThreshold, value: float | None, champion: float | None) -> list[GateCheck]:
    checks = []
    sign = 1.0 if GREATER_IS_BETTER[t.metric] else -1.0
    for bound, kind in ((t.min_absolute_change, "absolute"), (t.min_relative_change, "relative")):
        if bound is None:
            continue
        name = f"{t.metric} {kind} change vs champion >= {bound}"
        if value is None or champion is None:
            checks.append(
                GateCheck(
                    check=name,
                    scope="champion",
                    observed=None,
                    bound=bound,
                    passed=False,
                    reason=f"{t.metric} missing for candidate or champion; cannot compare",
                )
            )
            continue
        change = sign * (value - champion)
        if kind == "relative":
            change = change / abs(champion) if champion != 0 else (math.inf if change > 0 else 0.0)
        ok = change >= bound
        checks.append(
            GateCheck(
                check=name,
                scope="champion",
                observed=change,
                bound=bound,
                passed=ok,
                reason=(
                    f"{t.metric} {kind} change vs champion {change:+.4f} "
                    f"({value:.4f} vs {champion:.4f}) {'meets' if ok else 'misses'} >= {bound}"
                ),
            )
        )
    return checks


def apply_gate(
    gate: QualityGate,
    metrics: dict[str, float],
    slice_metrics: dict[str, dict[str, float]],
    slice_rows: dict[str, int],
    champion_metrics: dict[str, float] | None,
) -> list[GateCheck]:
    """Run every check of ``gate``; pure function, no I/O."""
    checks: list[GateCheck] = []
    for t in gate.thresholds:
        value = metrics.get(t.metric)
        checks += _bound_checks(t.metric, value, t.min_value, t.max_value, "overall")
        if champion_metrics is not None:
            checks += _change_checks(t, value, champion_metrics.get(t.metric))
    for s in gate.slice_thresholds:
        for key, values in slice_metrics.items():
            if slice_rows.get(key, 0) < gate.min_slice_rows:
                continue
            checks += _bound_checks(s.metric, values.get(s.metric), s.min_value, s.max_value, f"slice {key}")
    return checks


def _slices(
    task: TaskType, model: Any, x: pd.DataFrame, y: pd.Series, segments: pd.Series, column: str
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    values, rows = {}, {}
    for value in sorted(segments.dropna().unique(), key=str):
        mask = (segments == value).to_numpy()
        key = f"{column}={value}"
        rows[key] = int(mask.sum())
        values[key] = compute_metrics(task, model, x[mask], y[mask])
    return values, rows


def _metric_key(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", text)


def evaluate_model(
    trained: TrainedModel,
    holdout: pd.DataFrame,
    gate: QualityGate,
    *,
    model_name: str | None = None,
    segment_column: str | None = None,
    compare_to_champion: bool = True,
    fail_on_error: bool = True,
    mlflow_config: MlflowConfig | None = None,
    plots: bool = True,
) -> EvaluationReport:
    """Score the candidate (and the champion) on the holdout and apply the gate.

    Args:
        trained: The candidate from :func:`~mlops_tasks.training.train_model`.
        holdout: Holdout rows with features and target.
        gate: Thresholds to meet.
        model_name: Registered model whose ``champion`` is the baseline.
        segment_column: Column whose values define slices.
        compare_to_champion: Set False to apply only absolute thresholds.
        fail_on_error: Raise :class:`QualityGateError` when the gate fails.
        mlflow_config: Where MLflow lives.
        plots: Draw the evaluation plots (:mod:`mlops_tasks.plots`: ROC, precision-recall,
            confusion matrix and calibration, or predicted-vs-actual and residuals, with the
            champion beside the candidate; per-slice bars with the gate's thresholds) and log
            them on the candidate's run as ``plots/*.png``.

    Returns:
        The report; it is also logged to the candidate's MLflow run
        (``holdout_*`` metrics, ``evaluation/report.json``, ``plots/*.png``, tag
        ``mlops.gate.passed``).

    Raises:
        SchemaError: Feature, target or segment columns are missing from the holdout.
        ModelNotFoundError: The champion alias points at a deleted version.
        EvaluationError: The candidate or champion cannot score the holdout.
        QualityGateError: The gate failed and ``fail_on_error`` is True.

    Example:
        ```python
        from mlops_tasks.evaluation import MetricThreshold, QualityGate, evaluate_model
        gate = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.7)])
        report = evaluate_model(trained, holdout, gate, model_name="churn", fail_on_error=False)
        print(report.passed, report.failed_reasons)
        ```
    """
    if holdout.empty:
        raise ConfigurationError("The holdout is empty; use a larger dataset or holdout_fraction.")
    require_columns(holdout, [*trained.features, trained.target], what="Evaluation")
    if segment_column:
        require_columns(holdout, [segment_column], what="segment_column")
    if model_name is not None:
        check_model_name(model_name)
    x, y = holdout[trained.features], holdout[trained.target]

    resolved, client = connect(mlflow_config)
    champion_version = None
    if compare_to_champion and model_name:
        champion_version = get_champion(client, model_name)
    try:
        candidate = _load_model(resolved, trained.model_uri)
        metrics = compute_metrics(trained.task, candidate, x, y)
    except Exception as exc:
        raise EvaluationError(
            f"Candidate {trained.model_uri} (run {trained.run_id}) could not score the holdout: {exc}"
        ) from exc
    slice_metrics: dict[str, dict[str, float]] = {}
    slice_rows: dict[str, int] = {}
    if segment_column:
        slice_metrics, slice_rows = _slices(
            trained.task, candidate, x, y, holdout[segment_column], segment_column
        )
    champion, note, champion_model = None, None, None
    if champion_version is not None and champion_version.run_id == trained.run_id:
        note = f"candidate is the champion (version {champion_version.version}); no comparison"
    elif champion_version is not None:
        champion, champion_model = _score_champion(
            resolved, trained.task, model_name or "", champion_version, x, y
        )
    elif compare_to_champion and model_name:
        note = "no champion yet: only absolute thresholds apply"

    checks = apply_gate(gate, metrics, slice_metrics, slice_rows, champion.metrics if champion else None)
    report = EvaluationReport(
        run_id=trained.run_id,
        model_name=model_name,
        task=trained.task,
        holdout_rows=len(holdout),
        metrics=metrics,
        segment_column=segment_column,
        slice_metrics=slice_metrics,
        slice_rows=slice_rows,
        champion=champion,
        champion_note=note,
        checks=checks,
        passed=all(c.passed for c in checks),
    )
    if plots:
        figures = _figures(trained.task, candidate, champion_model, champion, x, y, report, gate)
        report.plots = _log_plots(client, report.run_id, figures)
    _log_report(client, report)
    logger.info(
        "Evaluated run %s: gate %s %s",
        trained.run_id,
        "passed" if report.passed else "failed",
        report.failed_reasons,
    )
    if not report.passed and fail_on_error:
        raise QualityGateError(
            f"Candidate run {trained.run_id} failed its quality gate: "
            + "; ".join(report.failed_reasons)
            + ". Improve the model or data, or relax the gate.",
            report=report,
        )
    return report


def _load_model(resolved: Any, model_uri: str) -> Any:
    """The scikit-learn model at ``model_uri``, read with an explicit client (no global URIs)."""
    return load_sklearn_model(resolved, model_uri)


def _score_champion(
    resolved: Any, task: TaskType, model_name: str, version: Any, x: pd.DataFrame, y: pd.Series
) -> tuple[ChampionComparison, Any]:
    """The champion's metrics on the holdout (it must still read this data), and the model."""
    uri = f"models:/{model_name}/{version.version}"
    try:
        model = _load_model(resolved, uri)
        champ_metrics = compute_metrics(task, model, x, y)
    except Exception as exc:
        raise EvaluationError(
            f"Champion {uri} could not score this holdout ({exc}); if the data's schema "
            "changed on purpose, evaluate with compare_to_champion=False."
        ) from exc
    comparison = ChampionComparison(
        version=int(version.version), run_id=version.run_id, metrics=champ_metrics
    )
    return comparison, model


def _figures(
    task: TaskType,
    candidate: Any,
    champion_model: Any,
    champion: ChampionComparison | None,
    x: pd.DataFrame,
    y: pd.Series,
    report: EvaluationReport,
    gate: QualityGate,
) -> dict[str, Any]:
    """The evaluation plots; a plot that cannot be drawn is a warning, never a failed evaluation."""
    from mlops_tasks.plots import evaluation_figures

    lines: dict[str, dict[str, float]] = {}
    for s in gate.slice_thresholds:
        for word, value in (("min", s.min_value), ("max", s.max_value)):
            if value is not None:
                lines.setdefault(s.metric, {})[f"slice {word} {value:g}"] = value
    if not lines and report.slice_metrics:  # no slice gate: the overall gate, else the first metric
        for t in gate.thresholds:
            for word, value in (("min", t.min_value), ("max", t.max_value)):
                if value is not None:
                    lines.setdefault(t.metric, {})[f"overall {word} {value:g}"] = value
        first = next(iter(report.metrics), None)
        if not lines and first:
            lines[first] = {}
    try:
        return evaluation_figures(
            task,
            candidate,
            x,
            y,
            champion_model=champion_model,
            champion_label=f"champion v{champion.version}" if champion else "champion",
            slice_metrics=report.slice_metrics,
            slice_rows=report.slice_rows,
            slice_thresholds=lines,
        )
    except Exception as exc:  # plots help people look; they never decide the gate
        logger.warning("Evaluation plots of run %s not drawn: %s: %s", report.run_id, type(exc).__name__, exc)
        return {}


def _log_plots(client: Any, run_id: str, figures: dict[str, Any]) -> list[str]:
    """Log the figures on the run as ``plots/<name>``; the artifact paths logged."""
    from mlops_tasks.plots import save_figures

    if not figures:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_figures(figures, tmp)
        client.log_artifacts(run_id, tmp, artifact_path="plots")
    return [f"plots/{p.name}" for p in paths]


def _log_report(client: Any, report: EvaluationReport) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(f"holdout_{k}", v, now, 0) for k, v in report.metrics.items()]
    for key, values in report.slice_metrics.items():
        metrics += [Metric(_metric_key(f"holdout_{key}_{k}"), v, now, 0) for k, v in values.items()]
    if report.champion:
        metrics += [Metric(f"champion_{k}", v, now, 0) for k, v in report.champion.metrics.items()]
    client.log_batch(report.run_id, metrics=metrics)
    client.set_tag(report.run_id, "mlops.gate.passed", str(report.passed).lower())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        path.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
        client.log_artifact(report.run_id, str(path), artifact_path="evaluation")


def plot_urls(report: EvaluationReport, mlflow_config: MlflowConfig | None = None) -> dict[str, str]:
    """Lasting web addresses of the report's plots, where the tracking server serves them.

    When MLflow is an HTTP server that proxies artifacts (``mlflow server --serve-artifacts``,
    the run's artifact URI is ``mlflow-artifacts:/...``), each plot is at
    ``<server>/get-artifact?path=plots/<name>&run_uuid=<run>``, the address MLflow's own UI
    shows images from. Otherwise (a local store, or artifacts straight on S3 that would need
    expiring presigned links) there is no such address and the result is empty: say the
    run and the artifact paths instead.

    Args:
        report: An evaluation whose ``plots`` were logged.
        mlflow_config: Where MLflow lives (as for :func:`evaluate_model`).

    Returns:
        Plot path (``plots/roc.png``) -> URL; empty when the server does not serve them.

    Example:
        ```python
        for path, url in plot_urls(report).items():
            print(path, url)
        ```
    """
    from urllib.parse import urlencode

    if not report.plots:
        return {}
    resolved, client = connect(mlflow_config)
    if not resolved.tracking_uri.startswith(("http://", "https://")):
        return {}
    if not str(client.get_run(report.run_id).info.artifact_uri).startswith("mlflow-artifacts:"):
        return {}
    base = resolved.tracking_uri.rstrip("/")
    return {
        path: f"{base}/get-artifact?{urlencode({'path': path, 'run_uuid': report.run_id})}"
        for path in report.plots
    }
