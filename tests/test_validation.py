"""Tests of mlops_tasks.validation against the real Great Expectations 1.x."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from great_expectations.core import ExpectationSuite

from mlops_tasks.errors import (
    ConfigurationError,
    DataError,
    DataValidationError,
    EmptyDatasetError,
    SchemaError,
)
from mlops_tasks.validation import (
    SUGGESTED_BY,
    FailedExpectation,
    ValidationReport,
    load_suite,
    suggest_expectations,
    validate_dataframe,
    write_suite,
)

ROWS = 60


@pytest.fixture
def reference() -> pd.DataFrame:
    """Good data: ints, floats with nulls, a small category set, bools, ids, dates."""
    rng = np.random.default_rng(7)
    income = rng.normal(50_000, 8_000, ROWS).round(2)
    income[::10] = np.nan  # 10% nulls
    visits = pd.array(rng.integers(0, 20, ROWS), dtype="Int64")
    visits[::6] = pd.NA
    return pd.DataFrame(
        {
            "age": rng.integers(18, 81, ROWS),
            "income": income,
            "plan": rng.choice(["basic", "pro", "team"], ROWS).astype(object),
            "active": rng.random(ROWS) < 0.7,
            "customer_id": [f"C{n:04d}" for n in range(ROWS)],
            "visits": visits,
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(ROWS), unit="D"),
        }
    )


@pytest.fixture
def suite(reference: pd.DataFrame) -> ExpectationSuite:
    return suggest_expectations(reference, "customers")


def _expectations(suite: ExpectationSuite, kind: str, column: str | None = None) -> list:
    return [
        e
        for e in suite.expectations
        if e.expectation_type == kind and (column is None or e.configuration.kwargs.get("column") == column)
    ]


def _failures(report: ValidationReport, column: str) -> list[FailedExpectation]:
    return [f for f in report.failed if f.column == column]


def _validation_error(df: pd.DataFrame, suite: ExpectationSuite) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        validate_dataframe(df, suite, dataset_name="batch-7")
    return info.value


# --- suggest + validate ---------------------------------------------------------------


def test_suggest_then_validate_same_data_succeeds(reference, suite):
    report = validate_dataframe(reference, suite, dataset_name="reference")

    assert report.success is True
    assert report.failed == []
    assert report.evaluated == len(suite.expectations) == report.successful
    assert report.suite_name == "customers"
    assert report.dataset == "reference"
    assert report.statistics["row_count"] == ROWS
    assert report.statistics["unsuccessful_expectations"] == 0


def test_suggested_suite_content(reference, suite):
    (columns,) = _expectations(suite, "expect_table_columns_to_match_set")
    assert columns.column_set == list(reference.columns)
    assert columns.exact_match is True

    (age_type,) = _expectations(suite, "expect_column_values_to_be_in_type_list", "age")
    assert "int64" in age_type.type_list and "Int64Dtype" in age_type.type_list
    assert "float64" not in age_type.type_list
    (income_type,) = _expectations(suite, "expect_column_values_to_be_in_type_list", "income")
    assert "float64" in income_type.type_list
    # visits is a nullable Int64 column with nulls: a CSV round trip turns it into float64.
    (visits_type,) = _expectations(suite, "expect_column_values_to_be_in_type_list", "visits")
    assert "float64" in visits_type.type_list

    (age_nulls,) = _expectations(suite, "expect_column_values_to_not_be_null", "age")
    assert age_nulls.mostly == 1.0
    (income_nulls,) = _expectations(suite, "expect_column_values_to_not_be_null", "income")
    assert income_nulls.mostly == pytest.approx(1 - 0.1 - 0.05)

    (age_range,) = _expectations(suite, "expect_column_values_to_be_between", "age")
    low, high = reference["age"].min(), reference["age"].max()
    assert age_range.min_value == pytest.approx(low - 0.1 * (high - low))
    assert age_range.max_value == pytest.approx(high + 0.1 * (high - low))

    (plan_set,) = _expectations(suite, "expect_column_values_to_be_in_set", "plan")
    assert plan_set.value_set == ["basic", "pro", "team"]
    (active_set,) = _expectations(suite, "expect_column_values_to_be_in_set", "active")
    assert active_set.value_set == [False, True]
    # 60 distinct ids exceed categorical_max_unique=50: no value set, only a type.
    assert _expectations(suite, "expect_column_values_to_be_in_set", "customer_id") == []
    assert _expectations(suite, "expect_column_values_to_be_in_type_list", "customer_id")

    assert all(e.meta["suggested_by"] == SUGGESTED_BY for e in suite.expectations)


def test_exclude_columns_get_no_column_expectations_but_stay_in_column_set(reference):
    suite = suggest_expectations(reference, "customers", exclude_columns=["customer_id"])

    about_id = [e for e in suite.expectations if e.configuration.kwargs.get("column") == "customer_id"]
    assert about_id == []
    (columns,) = _expectations(suite, "expect_table_columns_to_match_set")
    assert "customer_id" in columns.column_set
    changed = reference.assign(customer_id=np.arange(ROWS))
    assert validate_dataframe(changed, suite).success


def test_exclude_columns_must_exist(reference):
    with pytest.raises(ConfigurationError, match="customer_idd"):
        suggest_expectations(reference, "customers", exclude_columns=["customer_idd"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"range_margin": -0.1},
        {"null_margin": 1.5},
        {"categorical_max_unique": -1},
        {"categorical_max_unique": 2.5},
    ],
)
def test_suggest_rejects_bad_settings(reference, kwargs):
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        suggest_expectations(reference, "customers", **kwargs)


def test_suggest_rejects_empty_suite_name(reference):
    with pytest.raises(ConfigurationError, match="suite_name"):
        suggest_expectations(reference, " ")


def test_csv_round_trip_of_reference_still_validates(reference, suite):
    buffer = io.StringIO()
    reference.to_csv(buffer, index=False)
    buffer.seek(0)
    from_csv = pd.read_csv(buffer, parse_dates=["signup"])
    assert from_csv["visits"].dtype == "float64"  # the round trip really changed dtypes

    report = validate_dataframe(from_csv, suite, dataset_name="reference.csv")

    assert report.success, report.to_markdown()


def test_int_column_rejects_fractional_floats(reference, suite):
    batch = reference.assign(age=reference["age"] + 0.5)

    error = _validation_error(batch, suite)

    kinds = {f.expectation_type for f in _failures(error.report, "age")}
    assert "expect_column_values_to_be_in_type_list" in kinds
    assert "age" in str(error)


def test_category_column_is_checked_by_value_set_and_survives_csv():
    reference = pd.DataFrame(
        {
            "tier": pd.Categorical(["gold", "silver", "gold", "bronze"] * 5),
            "spend": np.linspace(10.0, 200.0, 20),
        }
    )
    suite = suggest_expectations(reference, "tiers")

    # GX 1.x cannot name a categorical dtype in a type list; the suite says so.
    assert _expectations(suite, "expect_column_values_to_be_in_type_list", "tier") == []
    assert suite.meta["untyped_columns"] == {"tier": "category"}
    (tier_set,) = _expectations(suite, "expect_column_values_to_be_in_set", "tier")
    assert tier_set.value_set == ["bronze", "gold", "silver"]
    buffer = io.StringIO()
    reference.to_csv(buffer, index=False)
    buffer.seek(0)
    assert validate_dataframe(pd.read_csv(buffer), suite).success

    unseen = reference.assign(tier=reference["tier"].astype(object))
    unseen.loc[0, "tier"] = "platinum"
    with pytest.raises(DataValidationError, match="tier"):
        validate_dataframe(unseen, suite)


# --- suite files ----------------------------------------------------------------------


def test_suite_json_written_read_back_equal(tmp_path, suite):
    path = write_suite(suite, tmp_path / "suites" / "customers.json")

    assert path == (tmp_path / "suites" / "customers.json").resolve()
    on_disk = json.loads(path.read_text())
    assert on_disk["name"] == "customers"
    assert on_disk["expectations"][0]["type"] == "expect_table_columns_to_match_set"
    assert on_disk == suite.to_json_dict()
    loaded = load_suite(path)
    assert loaded == suite
    assert len(loaded.expectations) == len(suite.expectations)


def test_loaded_suite_validates(tmp_path, reference, suite):
    path = write_suite(suite, tmp_path / "customers.json")

    assert validate_dataframe(reference, load_suite(path)).success


def test_missing_suite_file(tmp_path):
    path = tmp_path / "nope.json"

    with pytest.raises(ConfigurationError) as info:
        load_suite(path)

    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)


def test_corrupt_suite_json(tmp_path, suite):
    path = write_suite(suite, tmp_path / "customers.json")
    path.write_text(path.read_text()[:-40])

    with pytest.raises(ConfigurationError) as info:
        load_suite(path)

    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)


def test_unknown_expectation_type_in_suite_file(tmp_path, suite):
    path = write_suite(suite, tmp_path / "customers.json")
    data = json.loads(path.read_text())
    data["expectations"].append({"type": "expect_column_to_be_awesome", "kwargs": {"column": "age"}})
    path.write_text(json.dumps(data))

    # GX itself would only log this and drop the expectation.
    with pytest.raises(ConfigurationError) as info:
        load_suite(path)

    assert "expect_column_to_be_awesome" in str(info.value)
    assert str(path) in str(info.value)


def test_invalid_expectation_kwargs_in_suite_file(tmp_path, suite):
    path = write_suite(suite, tmp_path / "customers.json")
    data = json.loads(path.read_text())
    data["expectations"].append(
        {"type": "expect_column_values_to_be_between", "kwargs": {"colum": "age", "min_value": 1}}
    )
    path.write_text(json.dumps(data))

    with pytest.raises(ConfigurationError, match="expect_column_values_to_be_between"):
        load_suite(path)


def test_gx_0x_suite_file_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"expectation_suite_name": "old", "expectations": []}))

    with pytest.raises(ConfigurationError, match="0.x"):
        load_suite(path)


# --- bad data -------------------------------------------------------------------------


def test_missing_column(reference, suite):
    error = _validation_error(reference.drop(columns=["plan"]), suite)

    assert "plan" in str(error)
    assert "'batch-7'" in str(error) and "'customers'" in str(error)
    assert "Fix the data" in str(error) and "suite file" in str(error)
    report = error.report
    assert isinstance(report, ValidationReport) and not report.success
    (table,) = [f for f in report.failed if f.expectation_type == "expect_table_columns_to_match_set"]
    assert table.observed["details"]["mismatched"]["missing"] == ["plan"]
    plan_failures = _failures(report, "plan")
    assert plan_failures and all("plan" in f.observed["exception"] for f in plan_failures)
    assert "plan" in report.failed_columns


def test_renamed_column(reference, suite):
    error = _validation_error(reference.rename(columns={"plan": "plan_type"}), suite)

    message = str(error)
    assert "missing columns: plan" in message
    assert "unexpected columns: plan_type" in message
    assert "(table): missing columns ['plan'], unexpected columns ['plan_type']" in message
    assert {"plan", "plan_type"} <= set(error.report.failed_columns)


def test_strings_in_numeric_column(reference, suite):
    batch = reference.assign(age=reference["age"].astype(str))
    batch.loc[3, "age"] = "forty"

    error = _validation_error(batch, suite)

    assert "age" in str(error)
    (type_failure,) = [
        f
        for f in _failures(error.report, "age")
        if f.expectation_type == "expect_column_values_to_be_in_type_list"
    ]
    assert type_failure.observed["unexpected_count"] == ROWS
    assert "forty" in type_failure.observed["partial_unexpected_list"]
    assert len(type_failure.observed["partial_unexpected_list"]) == 10


def test_nulls_beyond_the_suite_limit(reference, suite):
    batch = reference.copy()
    batch.loc[: ROWS // 2, "income"] = np.nan  # about half missing; suite allows 15%

    error = _validation_error(batch, suite)

    assert "income" in str(error)
    (nulls,) = [
        f
        for f in _failures(error.report, "income")
        if f.expectation_type == "expect_column_values_to_not_be_null"
    ]
    assert nulls.expected["mostly"] == pytest.approx(0.85)
    assert nulls.observed["unexpected_percent"] > 50
    assert "nulls" in str(error) and "(allowed: at most 15%), expected none" in str(error)


def test_nulls_within_the_suite_limit_pass(reference, suite):
    batch = reference.copy()
    batch.loc[[1, 2, 3], "income"] = np.nan  # 10% + 5% < 15% allowed

    assert validate_dataframe(batch, suite).success


def test_values_out_of_range(reference, suite):
    batch = reference.copy()
    batch.loc[:29, "age"] = 500

    error = _validation_error(batch, suite)

    assert "age" in str(error)
    (between,) = [
        f for f in error.report.failed if f.expectation_type == "expect_column_values_to_be_between"
    ]
    assert between.column == "age"
    assert between.observed["unexpected_count"] == 30
    assert between.observed["partial_unexpected_list"] == [500] * 10  # capped at 10
    assert between.expected["max_value"] < 500
    # the message itself says what was expected and what was found
    low, high = between.expected["min_value"], between.expected["max_value"]
    assert f"age: 30 values (50%) outside [{low:.6g}, {high:.6g}], e.g. 500, 500, 500" in str(error)


def test_unseen_category(reference, suite):
    batch = reference.copy()
    batch.loc[5, "plan"] = "enterprise"

    error = _validation_error(batch, suite)

    assert "plan" in str(error)
    (in_set,) = error.report.failed
    assert in_set.expectation_type == "expect_column_values_to_be_in_set"
    assert in_set.column == "plan"
    assert in_set.observed["partial_unexpected_list"] == ["enterprise"]
    assert in_set.expected["value_set"] == ["basic", "pro", "team"]
    assert "plan: 1 values (1.67%) not in {'basic', 'pro', 'team'}, e.g. 'enterprise'" in str(error)


def test_empty_reference_frame():
    with pytest.raises(EmptyDatasetError, match="reference"):
        suggest_expectations(pd.DataFrame({"age": pd.Series([], dtype="int64")}), "customers")


def test_empty_frame_to_validate(reference, suite):
    with pytest.raises(EmptyDatasetError, match="batch-7"):
        validate_dataframe(reference.iloc[0:0], suite, dataset_name="batch-7")


def test_column_names_differing_only_in_case_are_refused(reference, suite):
    # GX 1.x matches column names case-insensitively and could check the wrong one.
    batch = reference.assign(AGE=reference["age"] * 10)

    with pytest.raises(SchemaError, match="AGE"):
        validate_dataframe(batch, suite)


def test_non_suite_argument_is_refused(reference):
    with pytest.raises(ConfigurationError, match="ExpectationSuite"):
        validate_dataframe(reference, {"name": "customers"})  # type: ignore[arg-type]


# --- report ---------------------------------------------------------------------------


def test_fail_on_error_false_returns_report(reference, suite):
    batch = reference.drop(columns=["plan"]).assign(age=reference["age"] + 1000)

    report = validate_dataframe(batch, suite, dataset_name="batch-7", fail_on_error=False)

    assert report.success is False
    assert report.evaluated == len(suite.expectations)
    assert report.successful == report.evaluated - len(report.failed)
    assert {"age", "plan"} <= set(report.failed_columns)
    assert "FAILED" in report.summary() and "age" in report.summary()


def test_to_markdown_contains_failed_columns(reference, suite):
    batch = reference.drop(columns=["plan"]).assign(age=reference["age"] + 1000)
    report = validate_dataframe(batch, suite, dataset_name="batch-7", fail_on_error=False)

    markdown = report.to_markdown()

    assert "`age`" in markdown and "`plan`" in markdown
    assert "| Column | Expectation | Expected | Observed |" in markdown
    assert "expect_column_values_to_be_between" in markdown
    assert "batch-7" in markdown and "customers" in markdown


def test_passing_report_markdown_and_summary(reference, suite):
    report = validate_dataframe(reference, suite, dataset_name="reference")

    assert "PASSED" in report.summary()
    assert "All expectations were met." in report.to_markdown()
    assert "| Column |" not in report.to_markdown()


def test_report_is_json_serialisable(reference, suite):
    batch = reference.drop(columns=["plan"]).assign(age=reference["age"].astype(str))
    report = validate_dataframe(batch, suite, fail_on_error=False)

    text = report.model_dump_json()

    assert ValidationReport.model_validate_json(text) == report
    json.loads(text)  # plain JSON, no NaN or numpy objects


def test_markdown_escapes_pipes():
    report = ValidationReport(
        suite_name="s",
        dataset="a|b",
        success=False,
        evaluated=1,
        successful=0,
        failed=[
            FailedExpectation(
                expectation_type="expect_column_values_to_be_in_set",
                column="x",
                expected={"value_set": ["p|q"]},
                observed={"unexpected_count": 1, "partial_unexpected_list": ["r|s"]},
            )
        ],
    )

    table_rows = [line for line in report.to_markdown().splitlines() if line.startswith("| `x`")]

    assert len(table_rows) == 1
    # Four cells: five unescaped pipes; the pipes inside values are escaped.
    assert len(re.findall(r"(?<!\\)\|", table_rows[0])) == 5
    assert "p\\|q" in table_rows[0] and "r\\|s" in table_rows[0]


# --- side effects ---------------------------------------------------------------------


def test_validation_writes_nothing_to_the_working_directory(tmp_path, monkeypatch, reference, suite):
    monkeypatch.chdir(tmp_path)

    validate_dataframe(reference, suite)
    with pytest.raises(DataValidationError):
        validate_dataframe(reference.drop(columns=["plan"]), suite)

    assert list(Path(tmp_path).iterdir()) == []


def test_data_validation_error_is_a_data_error(reference, suite):
    error = _validation_error(reference.drop(columns=["plan"]), suite)

    assert isinstance(error, DataError)


def test_validation_leaves_the_suite_unchanged(reference, suite):
    before = suite.to_json_dict()

    validate_dataframe(reference, suite)
    validate_dataframe(reference.assign(age=900), suite, fail_on_error=False)

    assert suite.to_json_dict() == before


def test_message_spells_out_the_first_failures_and_counts_the_rest():
    from mlops_tasks.validation.messages import explain_failure, explain_failures
    from mlops_tasks.validation.report import FailedExpectation

    between = FailedExpectation(
        expectation_type="expect_column_values_to_be_between",
        column="driver_age",
        expected={"min_value": 11.4, "max_value": 90.6},
        observed={"unexpected_count": 201, "partial_unexpected_list": [-5]},
    )
    assert explain_failure(between) == "driver_age: 201 values outside [11.4, 90.6], e.g. -5"
    typed = FailedExpectation(
        expectation_type="expect_column_values_to_be_in_type_list",
        column="age",
        expected={"type_list": ["int64"]},
        observed={"observed_value": "object"},
    )
    assert explain_failure(typed) == "age: type 'object', expected ['int64']"
    broken = FailedExpectation(
        expectation_type="expect_column_values_to_be_between", column="x", observed={"exception": "no x"}
    )
    assert explain_failure(broken).startswith("x: expect_column_values_to_be_between could not be checked")
    other = FailedExpectation(expectation_type="expect_column_kl_divergence_to_be_less_than", column="y")
    assert explain_failure(other).startswith("y: expect_column_kl_divergence_to_be_less_than expected")
    text = explain_failures([between, typed, broken, other, other])
    assert text.endswith("; and 2 more") and text.count("; ") == 3


def test_report_and_gx_data_docs_written_side_by_side(reference, suite, tmp_path):
    from mlops_tasks.validation import save_validation_report

    batch = reference.copy()
    batch.loc[:29, "age"] = 500
    report = validate_dataframe(batch, suite, dataset_name="batch-7", fail_on_error=False)
    saved = save_validation_report(report, location=tmp_path / "v")
    assert json.loads(open(saved.report_path).read())["success"] is False
    page = open(saved.data_docs_path, encoding="utf-8").read()
    assert saved.data_docs_path == str(tmp_path / "v" / "data-docs.html")
    assert "<html" in page.lower() and "age" in page
    assert "Validation" in page  # GX's own validation-results page
    # a report read back from JSON has no GX result: the JSON alone, no page
    again = ValidationReport.model_validate_json(open(saved.report_path).read())
    assert save_validation_report(again, location=tmp_path / "w").data_docs_path is None


def test_report_location_must_be_a_local_folder(reference, suite):
    from mlops_tasks.validation import save_validation_report

    report = validate_dataframe(reference, suite)
    with pytest.raises(ConfigurationError, match="local folder"):
        save_validation_report(report, location="s3://bucket/reports")
