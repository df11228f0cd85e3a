"""Parity of the validation fast path with Great Expectations, run live side by side.

Every case validates one frame against one suite twice: with ``run_suite`` (fast path
where it applies, GX for the rest) and with GX's own validator on the whole frame, then
compares the two ``ExpectationSuiteValidationResult`` objects field by field: suite
success and statistics, and per expectation success, exception info and every key of
``result`` (floats within 1e-12 relative, NaN equal to NaN, same Python types). The
frames cover clean data, edge cases and each bad-data kind the stage handles.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from typing import Any

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pytest
from great_expectations.core import ExpectationSuite
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

from mlops_tasks.errors import ConfigurationError, EmptyDatasetError
from mlops_tasks.validation import (
    DEFAULT_RESULT_FORMAT,
    FAST_EXPECTATION_TYPES,
    suggest_expectations,
    validate_dataframe,
)
from mlops_tasks.validation.engine import result_path, run_suite
from mlops_tasks.validation.gx_batch import gx_validate

ROWS = 120
REL = 1e-12


def _clean() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    income = rng.normal(50_000, 8_000, ROWS).round(2)
    income[::9] = np.nan
    visits = pd.array(rng.integers(0, 20, ROWS), dtype="Int64")
    visits[::7] = pd.NA
    opted = pd.array(rng.random(ROWS) < 0.5, dtype="boolean")
    opted[::11] = pd.NA
    return pd.DataFrame(
        {
            "age": rng.integers(18, 81, ROWS),
            "income": income,
            "plan": rng.choice(["basic", "pro", "team"], ROWS).astype(object),
            "active": rng.random(ROWS) < 0.7,
            "code": [f"C{n:04d}" for n in range(ROWS)],
            "visits": visits,
            "opted": opted,
            "tier": pd.Categorical(rng.choice(["gold", "silver"], ROWS)),
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(ROWS), unit="D"),
            "seen": pd.date_range("2024-03-01", periods=ROWS, freq="h", tz="Europe/Berlin"),
            "score": rng.random(ROWS) * 10,
            "name": pd.array([f"n{n % 13}" for n in range(ROWS)], dtype="string"),
        }
    )


CLEAN = _clean()


def _extra_expectations() -> list[Any]:
    """Covered types with arguments the suggestion never writes, and types with no fast path."""
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=["age", "income", "zip"], exact_match=False),
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(CLEAN.columns)),
        gxe.ExpectColumnValuesToBeBetween(
            column="age", min_value=20, max_value=70, strict_min=True, mostly=0.8
        ),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=1.0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="income", max_value=55_000.0, strict_max=True, mostly=0.5),
        gxe.ExpectColumnValuesToBeBetween(column="visits", min_value=0, max_value=15),
        gxe.ExpectColumnValuesToBeBetween(column="signup", min_value="2024-01-01", max_value="2024-03-01"),
        gxe.ExpectColumnValuesToBeInSet(column="plan", value_set=["basic", "pro"], mostly=0.6),
        gxe.ExpectColumnValuesToBeInSet(column="visits", value_set=list(range(10))),
        gxe.ExpectColumnValuesToBeInSet(column="tier", value_set=["gold"]),
        gxe.ExpectColumnValuesToBeInSet(column="opted", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="name", value_set=["n1", "n2"]),
        gxe.ExpectColumnValuesToBeInTypeList(column="tier", type_list=["CategoricalDtype"]),
        gxe.ExpectColumnValuesToBeInTypeList(column="seen", type_list=["DatetimeTZDtype", "datetime64[ns]"]),
        gxe.ExpectColumnValuesToBeInTypeList(column="plan", type_list=["int", "float"], mostly=0.5),
        gxe.ExpectColumnValuesToBeInTypeList(column="visits", type_list=["Int64Dtype"]),
        gxe.ExpectColumnValuesToBeInTypeList(column="opted", type_list=["BooleanDtype", "bool"]),
        gxe.ExpectColumnQuantileValuesToBeBetween(
            column="score", quantile_ranges={"quantiles": [0.5], "value_ranges": [[4, 6]]}
        ),
        *_more_types(),
    ]


def _more_types() -> list[Any]:
    """Built-in types beyond the suggested ones that the fast path computes too."""
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=100, max_value=200),
        gxe.ExpectTableRowCountToEqual(value=ROWS),
        gxe.ExpectTableColumnCountToEqual(value=len(CLEAN.columns)),
        gxe.ExpectTableColumnCountToBeBetween(min_value=3, max_value=12),
        gxe.ExpectColumnToExist(column="income"),
        gxe.ExpectColumnToExist(column="plan", column_index=2),
        gxe.ExpectColumnValuesToBeUnique(column="code"),
        gxe.ExpectColumnValuesToBeUnique(column="age", mostly=0.1),
        gxe.ExpectColumnValuesToBeIncreasing(column="signup"),
        gxe.ExpectColumnValuesToBeIncreasing(column="age", strictly=True, mostly=0.3),
        gxe.ExpectColumnValuesToBeDecreasing(column="score"),
        gxe.ExpectColumnValuesToBeDecreasing(column="seen", strictly=True),
        gxe.ExpectColumnValuesToBeOfType(column="age", type_="int64"),
        gxe.ExpectColumnValuesToBeOfType(column="plan", type_="str"),
        gxe.ExpectColumnValuesToBeOfType(column="tier", type_="CategoricalDtype"),
        gxe.ExpectColumnValuesToBeOfType(column="income", type_="float"),
        gxe.ExpectColumnMostCommonValueToBeInSet(column="plan", value_set=["basic"], ties_okay=True),
        gxe.ExpectColumnMostCommonValueToBeInSet(column="visits", value_set=[1, 2]),
        gxe.ExpectColumnValuesToMatchRegex(column="code", regex=r"^C\d{4}$"),
        gxe.ExpectColumnValuesToMatchRegex(column="plan", regex="^(basic|pro)$", mostly=0.6),
        gxe.ExpectColumnValuesToMatchRegex(column="tier", regex="old"),
        gxe.ExpectColumnValuesToNotMatchRegex(column="name", regex="1"),
        gxe.ExpectColumnValuesToNotMatchRegex(column="score", regex=r"\.\d{15}"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="plan", min_value=4, max_value=5),
        gxe.ExpectColumnValueLengthsToBeBetween(column="age", min_value=2, strict_min=True, mostly=0.5),
        gxe.ExpectColumnValueLengthsToBeBetween(column="visits", max_value=1),
        gxe.ExpectColumnValueLengthsToEqual(column="code", value=5),
        gxe.ExpectColumnValuesToMatchRegexList(column="plan", regex_list=["^b", "^p"]),
        gxe.ExpectColumnValuesToMatchRegexList(
            column="code", regex_list=["^C", "9$"], match_on="all", mostly=0.05
        ),
        gxe.ExpectColumnValuesToNotMatchRegexList(column="name", regex_list=["3", "7"]),
        gxe.ExpectColumnValuesToMatchStrftimeFormat(column="code", strftime_format="C%Y"),
        gxe.ExpectColumnValuesToMatchStrftimeFormat(column="name", strftime_format="n%d"),
        gxe.ExpectColumnValuesToBeJsonParseable(column="plan"),
        gxe.ExpectColumnValuesToBeDateutilParseable(column="code", mostly=0.5),
        gxe.ExpectColumnValueZScoresToBeLessThan(column="score", threshold=1.5, double_sided=True),
        gxe.ExpectColumnValueZScoresToBeLessThan(column="income", threshold=1, double_sided=False),
        gxe.ExpectColumnValueZScoresToBeLessThan(
            column="visits", threshold=-0.5, double_sided=False, mostly=0.2
        ),
        gxe.ExpectColumnValuesToNotBeInSet(column="plan", value_set=["enterprise", 1]),
        gxe.ExpectColumnValuesToNotBeInSet(column="visits", value_set=[0, 1, 2]),
        gxe.ExpectColumnValuesToNotBeInSet(column="tier", value_set=["bronze"]),
        gxe.ExpectColumnValuesToNotBeInSet(column="signup", value_set=["2024-01-01"]),
        gxe.ExpectColumnValuesToBeNull(column="income", mostly=14 / ROWS),  # exactly the clean share
        gxe.ExpectColumnMinToBeBetween(column="age", min_value=18),
        gxe.ExpectColumnMinToBeBetween(column="signup", min_value="2024-01-01"),
        gxe.ExpectColumnMaxToBeBetween(column="score", max_value=10, strict_max=True),
        gxe.ExpectColumnMeanToBeBetween(column="income", min_value=40_000, max_value=60_000),
        gxe.ExpectColumnMeanToBeBetween(column="score", min_value=0, max_value=10),
        gxe.ExpectColumnMedianToBeBetween(column="visits", min_value=5),
        gxe.ExpectColumnSumToBeBetween(column="active", min_value=5),
        gxe.ExpectColumnSumToBeBetween(column="income", max_value=1e7),
        gxe.ExpectColumnStdevToBeBetween(column="score", max_value=3),
        gxe.ExpectColumnStdevToBeBetween(column="age", min_value=1),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column="plan", min_value=2, max_value=3),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column="opted", max_value=2),
        gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(column="visits", min_value=0.1),
        gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(column="income", min_value=0.85),
        gxe.ExpectColumnDistinctValuesToBeInSet(column="plan", value_set=["basic", "pro", "team"]),
        gxe.ExpectColumnDistinctValuesToContainSet(column="tier", value_set=["gold", "bronze"]),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="visits", value_set=list(range(20))),
        gxe.ExpectColumnDistinctValuesToBeInSet(column="signup", value_set=["2024-01-01", "2024-01-02"]),
    ]


def _suite() -> ExpectationSuite:
    suggested = suggest_expectations(CLEAN, "parity")
    return ExpectationSuite(name="parity", expectations=[*suggested.expectations, *_extra_expectations()])


SUITE = _suite()


# --- frames -----------------------------------------------------------------------------


def _set(column: str, values: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        out[column] = values(out) if callable(values) else values
        return out

    return change


def _all_null(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["income"] = np.nan
    out["plan"] = None
    out["visits"] = pd.array([pd.NA] * len(df), dtype="Int64")
    out["tier"] = pd.Categorical([None] * len(df), categories=["gold", "silver"])
    return out


def _nan_inf(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.loc[[1, 5, 9], "score"] = [np.inf, -np.inf, np.nan]
    out.loc[[2, 4], "income"] = [np.inf, -np.inf]
    return out


def _mixed_object(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    values: list[Any] = ["basic", 1, 2.5, None, True, np.nan, "pro", pd.Timestamp("2024-01-01")]
    out["plan"] = (values * (len(df) // len(values) + 1))[: len(df)]
    return out


def _mostly_at_boundary(df: pd.DataFrame) -> pd.DataFrame:
    """income's suggested mostly, met exactly (and one null more: just below it)."""
    out = df.copy()
    mostly = next(
        e.configuration.kwargs["mostly"]
        for e in SUITE.expectations
        if e.expectation_type == "expect_column_values_to_not_be_null"
        and e.configuration.kwargs["column"] == "income"
    )
    nulls = len(df) - math.ceil(mostly * len(df))
    out["income"] = df["income"].fillna(1.0)
    out.loc[: nulls - 1, "income"] = np.nan
    out.loc[: nulls * 2, "code"] = None  # code: mostly=1.0, a far miss
    return out


def _mostly_just_below(df: pd.DataFrame) -> pd.DataFrame:
    out = _mostly_at_boundary(df)
    first_value = out["income"].first_valid_index()
    out.loc[first_value, "income"] = np.nan
    return out


def _wrong_types(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["age"] = out["age"].astype(float) + 0.5  # floats in an int column
    out["score"] = out["score"].astype(object)
    out.loc[[3, 8], "score"] = ["high", "7.5"]  # text in a float column
    out["active"] = out["active"].map({True: "yes", False: "no"})  # text in a bool column
    return out


def _header_only(df: pd.DataFrame) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(",".join(df.columns) + "\n"))


def _from_csv(df: pd.DataFrame) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(df.to_csv(index=False)), parse_dates=["signup"])


# name -> (how the clean frame is changed, the columns whose expectations are compared;
# None: the whole suite). Restricting a case to the columns it changes keeps GX's own
# run, which costs about 50 ms per expectation, short.
FRAMES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], set[str] | None]] = {
    "clean": (lambda df: df, None),
    "clean-csv-round-trip": (_from_csv, None),
    "all-null-columns": (_all_null, {"income", "plan", "visits", "tier"}),
    "mixed-type-object": (_mixed_object, {"plan"}),
    "nan-and-inf": (_nan_inf, {"score", "income"}),
    "mostly-at-boundary": (_mostly_at_boundary, {"income", "code"}),
    "mostly-just-below": (_mostly_just_below, {"income", "code"}),
    "empty-frame": (lambda df: df.iloc[:0], None),
    "string-index": (lambda df: df.set_axis([f"r{i}" for i in range(len(df))]), {"age", "plan", "score"}),
    "named-index": (lambda df: df.rename_axis("row_id"), {"age", "plan"}),
    "missing-column": (lambda df: df.drop(columns=["income"]), {"income", "age"}),
    "renamed-column": (lambda df: df.rename(columns={"plan": "plan_name"}), {"plan"}),
    "case-renamed-column": (lambda df: df.rename(columns={"age": "AGE"}), {"age"}),
    "extra-column": (_set("extra", 1), {"age"}),
    "wrong-types": (_wrong_types, {"age", "score", "active"}),
    "nulls-beyond-limit": (_set("age", lambda d: d["age"].where(d.index % 3 != 0)), {"age"}),
    "out-of-range": (_set("score", lambda d: d["score"].where(d.index % 4 != 0, 99.0)), {"score"}),
    "unseen-category": (_set("plan", lambda d: d["plan"].where(d.index % 5 != 0, "enterprise")), {"plan"}),
    "unseen-categorical-value": (
        _set("tier", lambda d: pd.Categorical(d["tier"].astype(str).where(d.index % 6 != 0, "bronze"))),
        {"tier"},
    ),
    "int64-to-int32": (_set("age", lambda d: d["age"].astype("int32")), {"age"}),
    "integers-beyond-2**53": (_set("visits", lambda d: d["visits"].where(d.index != 3, 2**60)), {"visits"}),
    "naive-to-aware-datetime": (_set("signup", lambda d: d["signup"].dt.tz_localize("UTC")), {"signup"}),
    "aware-to-naive-datetime": (_set("seen", lambda d: d["seen"].dt.tz_localize(None)), {"seen"}),
    "header-only-file": (_header_only, {"age", "plan"}),
    "empty-file": (lambda df: pd.DataFrame(), {"age"}),
}


def _suite_for(columns: set[str] | None) -> ExpectationSuite:
    if columns is None:
        return SUITE
    return ExpectationSuite(
        name=SUITE.name,
        expectations=[
            e
            for e in SUITE.expectations
            if e.configuration.kwargs.get("column") in columns or "column" not in e.configuration.kwargs
        ],
    )


SUMMARY = DEFAULT_RESULT_FORMAT


# --- comparison -----------------------------------------------------------------------


def _same(ours: Any, theirs: Any, where: str) -> None:
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), where
        assert sorted(ours) == sorted(theirs), f"{where}: keys {sorted(ours)} != {sorted(theirs)}"
        for key in theirs:
            _same(ours[key], theirs[key], f"{where}.{key}")
        return
    if isinstance(theirs, list | tuple):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), f"{where}: {ours!r} != {theirs!r}"
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _same(a, b, f"{where}[{i}]")
        return
    assert type(ours) is type(theirs), (
        f"{where}: type {type(ours)} != {type(theirs)} ({ours!r} vs {theirs!r})"
    )
    if isinstance(theirs, float | np.floating):
        if math.isnan(theirs):
            assert math.isnan(ours), f"{where}: {ours} != NaN"
        else:
            assert ours == pytest.approx(theirs, rel=REL, abs=0), f"{where}: {ours} != {theirs}"
        return
    if theirs is pd.NaT or theirs is pd.NA or theirs is None:
        assert ours is theirs, where
        return
    assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def _exception_info(info: dict[str, Any]) -> dict[str, Any]:
    """Exception info with GX's per-run metric ids (they hash the random batch id) masked."""
    return {
        re.sub(r"metric_domain_kwargs_id='[0-9a-f]+'", "metric_domain_kwargs_id=*", k): v
        for k, v in info.items()
    }


def _key(config: Any) -> str:
    kwargs = sorted((k, v) for k, v in config.kwargs.items() if k != "batch_id")
    return f"{config.type}({kwargs!r})"


def assert_same_results(ours: ExpectationSuiteValidationResult, gx: ExpectationSuiteValidationResult) -> None:
    """Field-by-field equality of two suite results (meta aside)."""
    assert ours.success == gx.success
    _same(dict(ours.statistics), dict(gx.statistics), "statistics")
    assert ours.suite_name == gx.suite_name
    theirs = {_key(r.expectation_config): r for r in gx.results}
    assert len(theirs) == len(gx.results) == len(ours.results)
    for result in ours.results:
        key = _key(result.expectation_config)
        other = theirs[key]
        assert result.expectation_config.kwargs["batch_id"] == ours.batch_id, key
        assert result.expectation_config.to_json_dict() | {
            "kwargs": None
        } == other.expectation_config.to_json_dict() | {"kwargs": None}, key
        assert result.success == other.success, key
        _same(
            _exception_info(result.exception_info), _exception_info(other.exception_info), f"{key}.exception"
        )
        _same(result.result, other.result, f"{key}.result")


def _both(df: pd.DataFrame, result_format: Any, suite: ExpectationSuite = SUITE) -> tuple[Any, Any]:
    ours = run_suite(df, suite, result_format=result_format)
    gx = gx_validate(df, suite, result_format=result_format, dataset_name="parity")
    return ours, gx


@pytest.mark.parametrize("frame", list(FRAMES))
def test_summary_results_equal_gx(frame: str) -> None:
    change, columns = FRAMES[frame]
    ours, gx = _both(change(CLEAN), SUMMARY, _suite_for(columns))
    assert_same_results(ours, gx)
    paths = [result_path(r)[0] for r in ours.results]
    assert set(paths) <= {"fast", "gx"}
    if frame == "clean":
        # GX's: between and not-in-set on a datetime column, quantiles, a min GX cannot compare
        assert paths.count("fast") == len(paths) - 4
    if frame == "integers-beyond-2**53":
        reasons = {result_path(r)[1] for r in ours.results}
        assert "the column holds integers beyond 2**53" in reasons


# A smaller suite for the result-format matrix: every covered type, four columns.
SMALL_SUITE = ExpectationSuite(
    name="parity-small",
    expectations=[
        e
        for e in SUITE.expectations
        if e.configuration.kwargs.get("column") in {"age", "plan", "score", "visits"}
        or "column" not in e.configuration.kwargs
    ],
)


@pytest.mark.parametrize(
    ("result_format", "fast"),
    [
        ("BOOLEAN_ONLY", True),
        ("BASIC", True),
        ("SUMMARY", True),
        ({"result_format": "SUMMARY", "partial_unexpected_count": 3}, True),
        ({"result_format": "SUMMARY", "partial_unexpected_count": 0}, True),
        ({"result_format": "BASIC", "exclude_unexpected_values": True}, True),
        ("COMPLETE", False),
        ({"result_format": "COMPLETE", "unexpected_index_column_names": ["code"]}, False),
        ({"result_format": "SUMMARY", "return_unexpected_index_query": True}, False),
    ],
    ids=lambda f: (
        f
        if isinstance(f, str)
        else "-".join(f"{k}={v}" for k, v in f.items())
        if isinstance(f, dict)
        else None
    ),
)
def test_result_formats_equal_gx(result_format: Any, fast: bool) -> None:
    df = _mixed_object(FRAMES["out-of-range"][0](CLEAN))
    df.loc[::5, "age"] = -3
    ours, gx = _both(df, result_format, SMALL_SUITE)
    assert_same_results(ours, gx)
    assert not ours.success
    paths = {result_path(r)[0] for r in ours.results}
    assert ("fast" in paths) is fast, "COMPLETE and index options go through GX"


def test_every_covered_type_takes_the_fast_path_on_clean_data() -> None:
    ours = run_suite(CLEAN, SUITE, result_format=SUMMARY)
    fast_types = {r.expectation_config.type for r in ours.results if result_path(r)[0] == "fast"}
    assert fast_types == FAST_EXPECTATION_TYPES
    reasons = {
        r.expectation_config.type: result_path(r)[1] for r in ours.results if result_path(r)[0] == "gx"
    }
    assert "has no fast path" in reasons["expect_column_quantile_values_to_be_between"]
    # between on a datetime column with text bounds: GX's own per-value path
    signup = [
        result_path(r)
        for r in ours.results
        if r.expectation_config.type == "expect_column_values_to_be_between"
        and r.expectation_config.kwargs["column"] == "signup"
    ]
    assert signup == [("gx", "dtype datetime64[ns] is compared value by value")]


def test_engine_gx_runs_everything_through_gx() -> None:
    ours = run_suite(CLEAN, SUITE, result_format=SUMMARY, engine="gx")
    assert {result_path(r) for r in ours.results} == {("gx", "engine='gx' was asked for")}


@pytest.mark.parametrize("frame", ["header-only-file", "empty-file", "empty-frame"])
def test_empty_inputs_keep_their_typed_error(frame: str) -> None:
    with pytest.raises(EmptyDatasetError):
        validate_dataframe(FRAMES[frame][0](CLEAN), SUITE)


def test_report_names_the_path_of_each_expectation() -> None:
    report = validate_dataframe(FRAMES["missing-column"][0](CLEAN), SUITE, fail_on_error=False)
    assert len(report.paths) == report.evaluated
    by_column = {(p.expectation_type, p.column): p for p in report.paths}
    missing = by_column[("expect_column_values_to_not_be_null", "income")]
    assert (missing.path, missing.reason) == ("gx", "column 'income' is not in the data")
    assert by_column[("expect_column_values_to_not_be_null", "age")].path == "fast"
    failed_paths = {f.path for f in report.failed}
    assert failed_paths == {"fast", "gx"}
    assert (
        report.statistics["fast_path_expectations"] + report.statistics["gx_expectations"] == report.evaluated
    )
    assert "Computed by:" in report.to_markdown()
    assert report.gx_result is not None and isinstance(report.gx_result, ExpectationSuiteValidationResult)


# --- suggest_expectations on large references -------------------------------------------


def test_suggested_value_set_over_many_rows_is_exact() -> None:
    """The distinct-value shortcut (a prefix already over the limit) changes no suggestion."""
    rows = 30_000
    late = np.array(["a", "b"] * (rows // 2), dtype=object)
    late[-60:] = [f"new{i}" for i in range(60)]  # over the limit only after the prefix
    early = np.array([f"id{i}" for i in range(rows)], dtype=object)
    few = np.array(["x", None, "y"] * (rows // 3), dtype=object)
    suite = suggest_expectations(pd.DataFrame({"late": late, "early": early, "few": few}), "big")
    value_sets = {
        e.configuration.kwargs["column"]: e.configuration.kwargs["value_set"]
        for e in suite.expectations
        if e.expectation_type == "expect_column_values_to_be_in_set"
    }
    assert value_sets == {"few": ["x", "y"]}
    nulls = {
        e.configuration.kwargs["column"]: e.configuration.kwargs.get("mostly", 1.0)
        for e in suite.expectations
        if e.expectation_type == "expect_column_values_to_not_be_null"
    }
    assert nulls["late"] == nulls["early"] == 1.0 and nulls["few"] < 0.67


def test_value_sets_on_a_bool_column_past_pandas_sorting_threshold_equal_gx() -> None:
    """Past 1M rows pandas answers isin on bools with numpy's sort-based isin; the fast path looks up."""
    rows = 1_000_001  # pandas switches to np.isin above 1,000,000 rows
    flags = np.random.default_rng(5).random(rows) < 0.3
    suite = ExpectationSuite(
        name="bools",
        expectations=[
            gxe.ExpectColumnValuesToBeInSet(column="flag", value_set=value_set, mostly=mostly)
            for value_set, mostly in [
                ([False, True], 1.0),
                ([True], 0.5),
                ([1], 1.0),
                (["True"], 1.0),
                ([0.0, "x"], 0.6),
            ]
        ],
    )
    ours, gx = _both(pd.DataFrame({"flag": flags}), SUMMARY, suite)
    assert_same_results(ours, gx)
    assert {result_path(r)[0] for r in ours.results} == {"fast"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"result_format": "EVERYTHING"},
        {"result_format": {"partial_unexpected_count": 3}},
        {"result_format": 3},
        {"engine": "polars"},
    ],
    ids=["unknown-format-name", "dict-without-format", "not-a-format", "unknown-engine"],
)
def test_bad_result_format_or_engine_is_refused_before_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="result_format|engine"):
        validate_dataframe(CLEAN, SUITE, **kwargs)
