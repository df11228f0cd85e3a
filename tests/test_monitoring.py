"""Drift check core: statistics equal Evidently's, verdicts, bad inputs, HTML report."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mlops_tasks.demo import make_churn_data
from mlops_tasks.errors import ConfigurationError, EmptyDatasetError, NoCommonColumnsError
from mlops_tasks.monitoring import (
    ColumnDrift,
    DriftReport,
    DriftSettings,
    DriftWindow,
    SkippedColumn,
    check_drift,
    choose_stattest,
    column_drift,
    infer_column_type,
    resolve_window,
)


def churn(rows: int, seed: int, drift: float = 0.0) -> pd.DataFrame:
    frame = make_churn_data(rows, seed=seed, drift=drift).drop(columns=["churned"])
    rng = np.random.default_rng(seed)
    # A two-valued column (z-test on small references) that moves with the drift knob.
    frame["paperless"] = np.where(rng.random(rows) < 0.5 + 0.3 * drift, "yes", "no")
    return frame


def evidently_columns(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, tuple[str, float, bool]]:
    """Evidently's own DataDriftPreset verdicts: column -> (test display name, value, drifted)."""
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = (
            Report([DataDriftPreset()], include_tests=True)
            .run(Dataset.from_pandas(current), Dataset.from_pandas(reference))
            .dict()
        )
    values = {
        m["config"]["column"]: (m["config"]["method"], float(m["value"]))
        for m in data["metrics"]
        if m["config"].get("type") == "evidently:metric_v2:ValueDrift"
    }
    verdicts = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in data["tests"]
        if t["metric_config"]["params"].get("type") == "evidently:metric_v2:ValueDrift"
    }
    return {c: (m, v, verdicts[c]) for c, (m, v) in values.items()}


@pytest.mark.parametrize(
    ("ref_rows", "cur_rows", "drift"),
    [(3000, 1500, 0.0), (3000, 1500, 0.8), (600, 300, 0.0), (600, 300, 0.7)],
    ids=["large-undrifted", "large-drifted", "small-undrifted", "small-drifted"],
)
def test_statistics_and_verdicts_equal_evidentlys(ref_rows, cur_rows, drift):
    reference, current = churn(ref_rows, 1), churn(cur_rows, 2, drift)
    report = check_drift(reference, current)
    theirs = evidently_columns(reference, current)
    assert {c.column for c in report.columns} == set(theirs)
    tests_seen = set()
    for column in report.columns:
        method, value, drifted = theirs[column.column]
        tests_seen.add(column.stattest)
        assert column.test_display_name == method, column.column
        assert column.value == pytest.approx(value, rel=1e-9, abs=1e-12), column.column
        assert column.drifted == drifted, column.column
    # Both size regimes and every default test are exercised across the cases.
    expected = {"wasserstein", "jensenshannon"} if ref_rows > 1000 else {"ks", "chisquare", "z"}
    assert expected <= tests_seen


def test_undrifted_then_drifted():
    reference = make_churn_data(4000, seed=5)
    calm = check_drift(reference, make_churn_data(1500, seed=6), target="churned")
    assert calm.status == "ok" and not calm.dataset_drift and calm.reason.startswith("No drift")
    assert "churned" not in {c.column for c in calm.columns}
    moved = check_drift(reference, make_churn_data(1500, seed=6, drift=0.9), target="churned")
    assert moved.status == "drift" and moved.dataset_drift
    assert moved.drifted_share >= 0.5 and "monthly_charges" in moved.drifted
    assert moved.drifted_columns == len(moved.drifted)
    summary = moved.summary()
    assert summary["status"] == "drift" and summary["drifted_columns"] == moved.drifted
    DriftReport.model_validate_json(moved.model_dump_json())  # JSON round trip


def test_large_continuous_columns_match_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(0, 2, 150_000))
    cur = pd.Series(rng.normal(0.3, 2, 120_000))
    cur.iloc[:50] = np.nan
    cur.iloc[50:60] = np.inf
    drift = column_drift("x", ref, cur, "numerical")
    clean = cur[np.isfinite(cur)]
    expected = stats.wasserstein_distance(ref, clean) / max(float(np.std(ref)), 0.001)
    assert isinstance(drift, ColumnDrift) and drift.stattest == "wasserstein"
    assert drift.value == pytest.approx(expected, rel=1e-9)
    assert drift.current_rows == 120_000 - 60 and drift.drifted


def test_overridden_tests_match_evidentlys_implementations():
    from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
    from evidently.legacy.calculations.stattests.ks_stattest import _ks_stat_test
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(1)
    ref, cur = pd.Series(rng.normal(0, 1, 5000)), pd.Series(rng.normal(0.1, 1, 3000))
    js = column_drift("x", ref, cur, "numerical", test="jensenshannon")
    assert js.value == pytest.approx(_jensenshannon(ref, cur, ColumnType.Numerical, 0.1)[0], rel=1e-9)
    ks = column_drift("x", ref, cur, "numerical", test="ks", threshold=0.01)
    assert ks.value == pytest.approx(_ks_stat_test(ref, cur, ColumnType.Numerical, 0.01)[0], rel=1e-9)
    assert ks.threshold == 0.01 and ks.drifted == (ks.value <= 0.01)
    with pytest.raises(ConfigurationError, match="needs a numerical column"):
        column_drift(
            "c", pd.Series(["a", "b"] * 900), pd.Series(["a"] * 900), "categorical", test="wasserstein"
        )


def test_per_column_thresholds_and_tests():
    reference, current = churn(3000, 1), churn(1500, 2, 0.8)
    base = check_drift(reference, current)
    value = next(c for c in base.columns if c.column == "age").value
    assert next(c for c in base.columns if c.column == "age").drifted
    relaxed = check_drift(
        reference,
        current,
        settings=DriftSettings(column_thresholds={"age": value * 1.5}, column_tests={"tenure_months": "ks"}),
    )
    age = next(c for c in relaxed.columns if c.column == "age")
    tenure = next(c for c in relaxed.columns if c.column == "tenure_months")
    assert age.threshold == pytest.approx(value * 1.5) and not age.drifted
    assert tenure.stattest == "ks" and tenure.statistic == "p_value"
    with pytest.raises(ConfigurationError, match="plan"):
        check_drift(reference, current, settings=DriftSettings(column_tests={"plan": "wasserstein"}))
    with pytest.raises(ValueError, match="positive"):
        DriftSettings(column_thresholds={"age": 0})


def test_column_types_and_default_tests_follow_evidently():
    assert infer_column_type(pd.Series([1, 2, 3] * 10)) == "categorical"
    assert infer_column_type(pd.Series(range(50))) == "numerical"
    assert infer_column_type(pd.Series(["a", "b"] * 10)) == "categorical"
    assert infer_column_type(pd.Series([f"id-{i}" for i in range(20)])) == "text"
    assert infer_column_type(pd.Series(pd.date_range("2026-01-01", periods=3))) == "datetime"
    assert choose_stattest("numerical", 1001, 6) == "wasserstein"
    assert choose_stattest("numerical", 1001, 5) == "jensenshannon"
    assert choose_stattest("numerical", 1000, 6) == "ks"
    assert choose_stattest("numerical", 1000, 3) == "chisquare"
    assert choose_stattest("categorical", 1000, 2) == "z"


# --- bad inputs ------------------------------------------------------------------------------


def test_empty_window_is_not_enough_data():
    window = DriftWindow(start=pd.Timestamp("2026-01-01", tz="UTC"), end=pd.Timestamp("2026-01-02", tz="UTC"))
    report = check_drift(churn(2000, 1), pd.DataFrame(), window=window, model_name="m")
    assert report.status == "not_enough_data" and report.current_rows == 0
    assert "Not enough traffic: no current rows in [2026-01-01" in report.reason and not report.columns


def test_window_below_minimum_is_not_enough_data():
    report = check_drift(churn(2000, 1), churn(50, 2, 0.9), settings=DriftSettings(min_rows=100))
    assert report.status == "not_enough_data"
    assert "Only 50 current rows" in report.reason and "min_rows=100" in report.reason


def test_columns_on_one_side_only_are_reported_and_common_ones_checked():
    reference = churn(2000, 1)
    current = churn(800, 2).drop(columns=["age", "plan"]).assign(new_feature=1.0)
    report = check_drift(reference, current)
    assert report.missing_in_current == ["age", "plan"]
    assert report.missing_in_reference == ["new_feature"]
    checked = {c.column for c in report.columns}
    assert "age" not in checked and "new_feature" not in checked and "tenure_months" in checked
    assert any("missing in current" in w for w in report.warnings)
    assert "missing in current (not checked): age, plan" in report.to_markdown()


def test_no_common_feature_fails_clearly():
    with pytest.raises(NoCommonColumnsError, match="share no feature column"):
        check_drift(churn(2000, 1), pd.DataFrame({"request_id": ["a"] * 200, "other": [1.0] * 200}))
    with pytest.raises(EmptyDatasetError, match="reference"):
        check_drift(pd.DataFrame(columns=["age"]), churn(200, 1))


def test_all_null_columns_are_skipped_not_fatal():
    reference, current = churn(2000, 1), churn(800, 2)
    current["monthly_charges"] = np.nan
    current["plan"] = None
    reference["support_calls"] = np.nan
    report = check_drift(reference, current)
    skipped = {s.column: s.reason for s in report.skipped_columns}
    assert set(skipped) == {"monthly_charges", "plan", "support_calls"}
    assert "null in the current data" in skipped["plan"]
    assert "null in the reference" in skipped["support_calls"]
    assert report.status == "ok" and len(report.columns) == 8
    everything_null = check_drift(reference[["plan"]], current[["plan"]])
    assert everything_null.status == "not_enough_data" and "nothing to compare" in everything_null.reason


def test_labels_that_join_nothing_are_reported():
    current = churn(500, 2).assign(request_id=[f"r{i}" for i in range(500)], prediction=0)
    labels = pd.DataFrame({"request_id": [f"other-{i}" for i in range(100)], "label": 1})
    report = check_drift(churn(2000, 1), current, labels=labels)
    assert report.performance is not None and report.performance.labelled_rows == 0
    assert "none of the 100 labels joined" in report.performance.reason
    assert report.status == "ok"


def test_performance_drift_against_training_metrics():
    current = churn(500, 2).assign(request_id=[f"r{i}" for i in range(500)])
    truth = np.random.default_rng(0).integers(0, 2, 500)
    current["prediction"] = truth
    labels = pd.DataFrame({"request_id": current["request_id"], "label": truth})
    good = check_drift(churn(2000, 1), current, labels=labels, training_metrics={"holdout_accuracy": 0.8})
    assert good.performance.checks[0].metric == "accuracy" and good.performance.checks[0].current == 1.0
    assert not good.performance.degraded and good.status == "ok"
    labels["label"] = 1 - truth  # every prediction now wrong
    bad = check_drift(churn(2000, 1), current, labels=labels, training_metrics={"holdout_accuracy": 0.8})
    assert bad.performance.degraded and bad.status == "drift" and "performance degraded" in bad.reason


def test_prediction_drift_is_checked_separately():
    reference = churn(3000, 1)
    current = churn(1000, 2)
    rng = np.random.default_rng(3)
    reference_predictions = pd.Series((rng.random(3000) < 0.2).astype(int))
    current["prediction"] = (rng.random(1000) < 0.6).astype(int)
    report = check_drift(reference, current, reference_predictions=reference_predictions)
    assert report.prediction is not None and report.prediction.drifted
    assert report.prediction.stattest == "jensenshannon" and not report.dataset_drift
    assert report.status == "drift" and "prediction drift" in report.reason
    assert "prediction" not in {c.column for c in report.columns}
    # the reason also says which feature columns moved, though they did not trigger it
    assert f"{report.drifted_columns} of {len(report.columns)} feature columns drifted" in report.reason


def test_prediction_drift_reason_lists_the_drifted_feature_columns():
    reference = churn(3000, 1)
    current = churn(1000, 2)
    current["monthly_charges"] = current["monthly_charges"] + 40  # one feature of several moves
    rng = np.random.default_rng(3)
    reference_predictions = pd.Series((rng.random(3000) < 0.2).astype(int))
    current["prediction"] = (rng.random(1000) < 0.6).astype(int)
    report = check_drift(reference, current, reference_predictions=reference_predictions)
    assert not report.dataset_drift and "monthly_charges" in report.drifted
    assert report.status == "drift" and "prediction drift" in report.reason
    assert "feature columns drifted" in report.reason and "monthly_charges" in report.reason


def test_html_report_from_a_sample_says_so(tmp_path):
    settings = DriftSettings(html_sample_rows=500)
    report = check_drift(
        churn(3000, 1),
        churn(1500, 2, 0.8),
        settings=settings,
        model_name="churn",
        report_location=str(tmp_path),
    )
    assert report.html_uri and report.html_uri.startswith(str(tmp_path))
    page = open(report.html_uri, encoding="utf-8").read()
    assert "Verdicts below are computed on the full data" in page
    assert "3,000 reference rows" in page and "sample of 500 reference and 500 current rows" in page
    assert "evidently" in page.lower() and report.html_sample_rows == 500
    assert "DRIFT" in page


def test_resolve_window():
    end = pd.Timestamp("2026-03-01T12:00", tz="UTC").to_pydatetime()
    window = resolve_window(last_hours=6, end=end)
    assert window.start == end - pd.Timedelta(hours=6) and window.end == end
    naive = resolve_window(start="2026-03-01T00:00", end="2026-03-01T01:00")
    assert naive.start.tzinfo is not None
    with pytest.raises(ConfigurationError, match="not before"):
        resolve_window(start="2026-03-02", end="2026-03-01")
    assert isinstance(column_drift("x", pd.Series([np.nan]), pd.Series([1.0]), "numerical"), SkippedColumn)


def test_pandas_categoricals_and_unknown_dtypes_as_evidently_does():
    reference, current = churn(600, 1), churn(300, 2, 0.6)
    for frame in (reference, current):
        frame["plan"] = pd.Categorical(frame["plan"], categories=["basic", "standard", "premium", "unused"])
        frame["num_products"] = frame["num_products"].astype("Int64")  # Evidently: unknown type
    report = check_drift(reference, current)
    theirs = evidently_columns(reference, current)
    plan = next(c for c in report.columns if c.column == "plan")
    assert plan.stattest == "chisquare" and plan.value == pytest.approx(theirs["plan"][1], rel=1e-9)
    assert "num_products" not in theirs and "num_products" not in {c.column for c in report.columns}
    skipped = {s.column: s.reason for s in report.skipped_columns}
    assert "dtype Int64" in skipped["num_products"]


def test_labels_of_multi_row_requests_join_by_position():
    current = churn(400, 2).assign(request_id=[f"r{i // 4}" for i in range(400)])
    truth = np.random.default_rng(1).integers(0, 2, 400)
    current["prediction"] = truth
    labels = pd.DataFrame({"request_id": current["request_id"], "label": truth})
    # Requests in another order than the log, rows within a request in the log's order.
    order = dict(zip(labels["request_id"].unique(), np.random.default_rng(2).permutation(100), strict=True))
    shuffled = labels.assign(k=labels["request_id"].map(order)).sort_values("k", kind="stable")
    report = check_drift(churn(2000, 1), current, labels=shuffled)
    # 100 requests of 4 rows: every row finds its own label, so accuracy is exact.
    assert report.performance.labelled_rows == 400
    assert report.performance.checks[0].current == 1.0
    by_row = shuffled.assign(row=shuffled.groupby("request_id").cumcount()).iloc[::-1]
    assert check_drift(churn(2000, 1), current, labels=by_row).performance.checks[0].current == 1.0
