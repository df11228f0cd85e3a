"""The Evidently HTML report: rendered from a seeded sample, headed by the full-data verdicts.

Evidently's ``DataDriftPreset`` gets the tests and thresholds chosen on the full
data; a banner at the top of the page shows the full-data verdicts and says that the
plots are the sample's. :func:`save_html` writes the page to a folder or to S3.
"""

from __future__ import annotations

import html as _html
import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_tasks.monitoring.column_plan import ColumnPlan
from mlops_tasks.monitoring.models import PREDICTION_COLUMN, DriftReport, DriftSettings
from mlops_tasks.settings import S3Config, state_dir

__all__ = ["default_report_location", "render_evidently", "render_html", "save_html", "with_banner"]


def _sample_positions(n_rows: int, rows: int, seed: int) -> np.ndarray | None:
    """Sorted positions of a seeded sample of ``rows`` rows, ``None`` when all rows fit."""
    if n_rows <= rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=rows, replace=False))


def _take(frame: pd.DataFrame, columns: list[str], positions: np.ndarray | None) -> pd.DataFrame:
    """The sampled rows of ``columns`` (rows first, so no full-size copy is made)."""
    rows = frame if positions is None else frame.iloc[positions]
    return rows[columns].reset_index(drop=True)


def render_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    report: DriftReport,
    settings: DriftSettings | None = None,
    reference_predictions: pd.Series | None = None,
) -> str:
    """Evidently's ``DataDriftPreset`` HTML on a seeded sample, headed by the full-data verdicts.

    The preset gets the tests and thresholds chosen on the full data, so its
    plots use the same statistics; its numbers are the sample's, and a banner at
    the top says that the verdicts (shown in the banner's table) come from all rows.
    :func:`check_drift` does this itself when given a ``report_location``.

    Args:
        reference: Reference rows.
        current: Current rows.
        report: The full-data report (columns, tests, thresholds).
        settings: Sample size and seed.
        reference_predictions: Predictions on the reference, to show prediction drift.

    Returns:
        A standalone HTML page.

    Example:
        ```python
        page = render_html(reference, current, report)
        Path("drift.html").write_text(page)
        ```
    """
    specs = [ColumnPlan(c.column, c.column_type, c.stattest, c.threshold) for c in report.columns]
    if report.prediction is not None and reference_predictions is not None:
        p = report.prediction
        specs.append(ColumnPlan(p.column, p.column_type, p.stattest, p.threshold))
    page, ref_n, cur_n = render_evidently(
        reference, current, specs, reference_predictions, settings or DriftSettings()
    )
    return with_banner(page, report, ref_n, cur_n)


def render_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    specs: list[ColumnPlan],
    reference_predictions: pd.Series | None,
    settings: DriftSettings,
) -> tuple[str, int, int]:
    """Evidently's ``DataDriftPreset`` page on seeded samples of both sides, with the planned tests.

    Args:
        reference: Reference rows.
        current: Current rows.
        specs: Columns with their type, test and threshold (``prediction`` included to show it).
        reference_predictions: Predictions on the reference rows (for the ``prediction`` column).
        settings: ``html_sample_rows``, ``sample_seed`` and ``drift_share``.

    Returns:
        The page and the reference and current sample sizes.

    Raises:
        ValueError: ``reference_predictions`` and ``reference`` differ in length.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    names = [s.name for s in specs if s.name != PREDICTION_COLUMN]
    ref_pos = _sample_positions(len(reference), settings.html_sample_rows, settings.sample_seed)
    cur_pos = _sample_positions(len(current), settings.html_sample_rows, settings.sample_seed + 1)
    ref_sample = _take(reference, names, ref_pos)
    with_prediction = len(names) < len(specs)
    cur_sample = _take(current, names + ([PREDICTION_COLUMN] if with_prediction else []), cur_pos)
    if with_prediction and reference_predictions is not None:
        predictions = np.asarray(reference_predictions)
        if len(predictions) != len(reference):
            raise ValueError(f"{len(predictions)} reference predictions for {len(reference)} reference rows")
        ref_sample[PREDICTION_COLUMN] = predictions if ref_pos is None else predictions[ref_pos]
    # A column with values in the full data may have none in the sample: leave it out of the HTML.
    shown = [
        s
        for s in specs
        if s.name in ref_sample.columns
        and s.name in cur_sample.columns
        and ref_sample[s.name].notna().any()
        and cur_sample[s.name].notna().any()
    ]
    definition = DataDefinition(
        numerical_columns=[s.name for s in shown if s.kind == "numerical"],
        categorical_columns=[s.name for s in shown if s.kind == "categorical"],
    )
    preset = DataDriftPreset(
        columns=[s.name for s in shown],
        drift_share=settings.drift_share,
        per_column_method={s.name: s.test for s in shown},
        per_column_threshold={s.name: s.threshold for s in shown},
    )
    cols = [s.name for s in shown]
    snapshot = Report([preset]).run(
        Dataset.from_pandas(cur_sample[cols], data_definition=definition),
        Dataset.from_pandas(ref_sample[cols], data_definition=definition),
    )
    return snapshot.get_html_str(as_iframe=False), len(ref_sample), len(cur_sample)


def with_banner(page: str, report: DriftReport, ref_n: int, cur_n: int) -> str:
    """``page`` with the full-data verdicts of ``report`` inserted at the top of its body."""
    banner = _banner(report, ref_n, cur_n)
    match = re.search(r"<body[^>]*>", page)
    if match:
        return page[: match.end()] + banner + page[match.end() :]
    return banner + page


def _banner(report: DriftReport, ref_sample: int, cur_sample: int) -> str:
    esc = _html.escape
    rows = "".join(
        f"<tr><td>{esc(c.column)}</td><td>{c.column_type}</td><td>{esc(c.test_display_name)}</td>"
        f"<td>{c.value:.6g}</td><td>{c.threshold:g}</td>"
        f"<td style='color:{'#b00' if c.drifted else '#070'}'>"
        f"{'drift' if c.drifted else 'no drift'}</td></tr>"
        for c in report.columns + ([report.prediction] if report.prediction else [])
    )
    model = ""
    if report.model_name:
        model = f" &mdash; model {esc(report.model_name)} v{esc(report.model_version or '?')}"
    window = f"<p>Window: {esc(report.window.describe())}</p>" if report.window else ""
    return (
        "<div id='mlops-drift-summary' style='font-family:sans-serif;margin:16px;padding:12px;"
        "border:2px solid #888;background:#fafafa'>"
        f"<h2>Drift check: {esc(report.status.upper())}{model}</h2>"
        f"<p>{esc(report.reason)}</p>{window}"
        f"<p><b>Verdicts below are computed on the full data</b> ({report.reference_rows:,} reference rows, "
        f"{report.current_rows:,} current rows) with Evidently's tests and thresholds. The Evidently "
        f"report that follows was rendered from a seeded random sample of {ref_sample:,} reference and "
        f"{cur_sample:,} current rows, so its plots and scores are the sample's and may differ slightly.</p>"
        "<table border='1' cellpadding='4' style='border-collapse:collapse'>"
        "<tr><th>column</th><th>type</th><th>test</th><th>value (full data)</th><th>threshold</th>"
        f"<th>verdict</th></tr>{rows}</table></div>"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "data"


def save_html(page: str, location: str, report: DriftReport, *, s3: S3Config | None = None) -> str:
    """Write the HTML report under ``location`` (local folder or ``s3://bucket/prefix``).

    The file is ``<location>/<model>/<checked_at>-<id>/drift-report.html``.

    Returns:
        The URI written (a local path or an ``s3://`` URI).

    Raises:
        StorageError: S3 refused the write.
        ServiceUnavailableError: The S3 endpoint did not answer.

    Example:
        ```python
        uri = save_html(page, "s3://reports/drift", report)
        ```
    """
    from mlops_tasks.data import s3_client, split_s3_uri, translate_s3_error

    stamp = f"{report.checked_at:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:6]}"
    rel = f"{_slug(report.model_name or 'data')}/{stamp}/drift-report.html"
    data = page.encode("utf-8")
    if location.startswith("s3://"):
        uri = f"{location.rstrip('/')}/{rel}"
        bucket, key = split_s3_uri(uri)
        try:
            s3_client(s3).put_object(Bucket=bucket, Key=key, Body=data, ContentType="text/html")
        except Exception as exc:
            raise translate_s3_error(exc, uri) from exc
        return uri
    path = Path(location).expanduser().resolve() / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def default_report_location() -> str:
    """``<state dir>/monitoring``: where HTML reports go when no location is given."""
    return str(state_dir() / "monitoring")


# --- reference and current data --------------------------------------------------------------
