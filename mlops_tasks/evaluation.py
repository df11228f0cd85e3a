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

    Returns:
        The report; it is also logged to the candidate's MLflow run
        (``holdout_*`` metrics, ``evaluation/report.json``, tag ``mlops.gate.passed``).

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
    champion, note = None, None
    if champion_version is not None and champion_version.run_id == trained.run_id:
        note = f"candidate is the champion (version {champion_version.version}); no comparison"
    elif champion_version is not None:
        champion = _score_champion(resolved, trained.task, model_name or "", champion_version, x, y)
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
) -> ChampionComparison:
    """The champion's metrics on the holdout (it must still read this data)."""
    uri = f"models:/{model_name}/{version.version}"
    try:
        champ_metrics = compute_metrics(task, _load_model(resolved, uri), x, y)
    except Exception as exc:
        raise EvaluationError(
            f"Champion {uri} could not score this holdout ({exc}); if the data's schema "
            "changed on purpose, evaluate with compare_to_champion=False."
        ) from exc
    return ChampionComparison(version=int(version.version), run_id=version.run_id, metrics=champ_metrics)


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
