"""Validating a frame against a suite: the fast path where it applies, GX for the rest.

:func:`run_suite` splits the suite: every expectation :func:`.fast_path.fallback_reason`
clears is computed by :class:`.fast_path.FastValidator` (vectorised metrics, GX's own
result code); the others run through Great Expectations itself
(:func:`.gx_batch.gx_validate`) on just the columns they name. The two lists of
``ExpectationValidationResult`` are merged, in the order GX's validator evaluates a suite
(grouped by column, first-seen order), into one ``ExpectationSuiteValidationResult`` with
GX's statistics. Every result's ``meta["mlops_tasks"]`` names the path it took:
``{"path": "fast"}`` or ``{"path": "gx", "reason": "..."}``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import great_expectations as gx
import pandas as pd
from great_expectations.core import ExpectationSuite
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from great_expectations.validator.validation_statistics import calc_validation_statistics

from mlops_tasks.validation.fast_path import (
    FAST_EXPECTATION_TYPES,
    FastValidator,
    NotCoveredError,
    certain_raise_rows,
    fallback_reason,
    fast_result_format,
    is_column_domain,
)
from mlops_tasks.validation.gx_batch import gx_validate

logger = logging.getLogger(__name__)

__all__ = ["FAST_EXPECTATION_TYPES", "META_KEY", "Engine", "result_path", "run_suite"]

#: Key of ``ExpectationValidationResult.meta`` that names the path a result took.
META_KEY = "mlops_tasks"

#: ``"auto"``: fast path where it applies, GX for the rest; ``"gx"``: GX for everything.
Engine = Literal["auto", "gx"]

_NO_COLUMN = object()


def run_suite(
    df: pd.DataFrame,
    suite: ExpectationSuite,
    *,
    result_format: str | Mapping[str, Any],
    dataset_name: str = "dataset",
    engine: Engine = "auto",
) -> ExpectationSuiteValidationResult:
    """Validate a frame against a suite and return GX's suite result object.

    Args:
        df: The data (checked by the caller).
        suite: The suite.
        result_format: GX result format (name or dict).
        dataset_name: Label of the data in messages.
        engine: ``"auto"`` or ``"gx"`` (every expectation through GX).

    Returns:
        An ``ExpectationSuiteValidationResult`` whose results carry their path in
        ``meta["mlops_tasks"]``.

    Raises:
        DataError: Great Expectations could not run the validation at all.

    Example:
        ```python
        result = run_suite(df, suite, result_format="SUMMARY")
        paths = [result_path(r) for r in result.results]
        ```
    """
    configs = suite.expectation_configurations
    parsed, format_reason = fast_result_format(result_format)
    reasons: list[str | None]
    if engine == "gx":
        reasons = ["engine='gx' was asked for"] * len(configs)
    else:
        reasons = [format_reason or fallback_reason(config, df) for config in configs]

    fast: dict[int, ExpectationValidationResult] = {}
    if any(reason is None for reason in reasons):
        fast = _run_fast(df, configs, reasons, parsed)
    slow = [i for i, reason in enumerate(reasons) if reason is not None]
    gx_result = None
    if slow:
        gx_results, gx_result = _run_fallbacks(df, suite, configs, slow, result_format, dataset_name, engine)
        for i in slow:
            evr = gx_results[i]
            evr.meta = {**(evr.meta or {}), META_KEY: {"path": "gx", "reason": reasons[i]}}
            fast[i] = evr
    ordered = [fast[i] for i in _gx_order(configs)]
    logger.info(
        "Validated %d expectations: %d on the fast path, %d through Great Expectations",
        len(configs),
        len(configs) - len(slow),
        len(slow),
    )
    statistics = calc_validation_statistics(ordered)
    meta, batch_id = _suite_meta(gx_result)
    for evr in ordered:
        # GX's validator writes its batch id into each result's configuration; one id for all.
        if evr.expectation_config is not None:
            evr.expectation_config.kwargs["batch_id"] = batch_id
    return ExpectationSuiteValidationResult(
        results=ordered,
        success=statistics.success,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": statistics.evaluated_expectations,
            "successful_expectations": statistics.successful_expectations,
            "unsuccessful_expectations": statistics.unsuccessful_expectations,
            "success_percent": statistics.success_percent,
        },
        meta=meta,
        batch_id=batch_id,
    )


def result_path(result: ExpectationValidationResult) -> tuple[str, str | None]:
    """The path a result took and why, read from its meta.

    Args:
        result: One result of :func:`run_suite`.

    Returns:
        ``("fast", None)``, ``("gx", reason)``, or ``("gx", None)`` for a result that did
        not come from :func:`run_suite`.

    Example:
        ```python
        path, reason = result_path(result.results[0])
        ```
    """
    info = (result.meta or {}).get(META_KEY) or {}
    return str(info.get("path", "gx")), info.get("reason")


def _run_fast(
    df: pd.DataFrame,
    configs: list[ExpectationConfiguration],
    reasons: list[str | None],
    parsed: dict[str, Any],
) -> dict[int, ExpectationValidationResult]:
    """Fast-path results by suite position; a config whose scan raises goes to GX instead."""
    validator = FastValidator(df, parsed)
    by_column: dict[Any, list[int]] = {}
    for i, config in enumerate(configs):
        if reasons[i] is None:
            by_column.setdefault(config.kwargs.get("column", _NO_COLUMN), []).append(i)
    results: dict[int, ExpectationValidationResult] = {}
    for column, positions in by_column.items():
        for i in positions:
            try:
                evr = validator.validate(configs[i])
            except NotCoveredError as exc:
                reasons[i] = str(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - any surprise here is GX's to judge
                reasons[i] = f"fast path raised {type(exc).__name__}: {exc}"
                logger.debug("Fast path fell back to GX for %s", configs[i].type, exc_info=True)
                continue
            evr.meta = {**(evr.meta or {}), META_KEY: {"path": "fast"}}
            results[i] = evr
        if column is not _NO_COLUMN:
            validator.release(column)
    return results


def _run_fallbacks(
    df: pd.DataFrame,
    suite: ExpectationSuite,
    configs: list[ExpectationConfiguration],
    slow: list[int],
    result_format: str | Mapping[str, Any],
    dataset_name: str,
    engine: Engine,
) -> tuple[dict[int, ExpectationValidationResult], ExpectationSuiteValidationResult | None]:
    """GX's results for the expectations at ``slow``, and GX's suite result if it ran on all of ``df``.

    GX loads a batch by hashing the frame it is given (twice per ``batch.validate``), which
    costs more than the fast path's whole scan, so GX gets only what it needs: the columns
    the expectations name (:func:`_gx_frame`), and, for expectations GX certainly raises on
    (:func:`~.fast_path.certain_raise_rows`), only the rows up to the one it raises at. The
    result of an expectation that raises is GX's exception alone, whatever the rows after.
    ``engine="gx"`` is GX's own run as it always was: the whole frame, one batch.
    """
    groups: list[tuple[pd.DataFrame, list[int]]] = []
    if engine == "gx":
        groups.append((df, slow))
    else:
        raise_rows = {i: certain_raise_rows(configs[i], df) for i in slow}
        rest = [i for i in slow if raise_rows[i] is None]
        raising = [i for i in slow if raise_rows[i] is not None]
        if rest:
            groups.append((_gx_frame(df, [configs[i] for i in rest], result_format), rest))
        if raising:
            rows = max([1, *(raise_rows[i] or 0 for i in raising)])
            groups.append((_gx_frame(df, [configs[i] for i in raising], result_format).iloc[:rows], raising))
    results: dict[int, ExpectationValidationResult] = {}
    whole: ExpectationSuiteValidationResult | None = None
    for frame, positions in groups:
        part = ExpectationSuite(
            name=suite.name,
            expectations=[configs[i].to_domain_obj() for i in positions],
            suite_parameters=dict(suite.suite_parameters or {}),
            meta=dict(suite.meta or {}),
        )
        gx_result = gx_validate(frame, part, result_format=result_format, dataset_name=dataset_name)
        results.update(
            zip(positions, _matched(gx_result.results, [configs[i] for i in positions]), strict=True)
        )
        if frame is df and len(positions) == len(configs):
            whole = gx_result
    return results, whole


def _gx_frame(
    df: pd.DataFrame, configs: list[ExpectationConfiguration], result_format: str | Mapping[str, Any]
) -> pd.DataFrame:
    """The part of ``df`` GX needs for these expectations: the columns they name, or all of it.

    GX loads its batch by hashing the whole frame, so handing it only the columns of the
    expectations that fall back saves most of its cost. Table-level expectations,
    multi-column ones (any but a single-column domain) and result formats naming index
    columns get the whole frame. GX
    matches column names case-insensitively on pandas, so every column matching a name
    that way is kept (a missing column then raises in GX as it would on the whole frame).
    """
    if df.shape[1] == 0 or (
        isinstance(result_format, Mapping) and result_format.get("unexpected_index_column_names")
    ):
        return df
    folded: dict[str, list[str]] = {}
    for column in df.columns:
        folded.setdefault(str(column).casefold(), []).append(column)
    keep: dict[str, None] = {}
    for config in configs:
        named = config.kwargs.get("column")
        if not isinstance(named, str) or not is_column_domain(config):
            return df
        keep.update(dict.fromkeys(folded.get(named.casefold(), [])))
    if not keep:
        # Only missing columns: GX needs some frame to raise "column ... does not exist" on.
        keep = {df.columns[0]: None}
    return df[list(keep)]


def _matched(
    results: list[ExpectationValidationResult], configs: list[ExpectationConfiguration]
) -> list[ExpectationValidationResult]:
    """GX's results in the order of ``configs`` (GX returns them in its own order)."""
    remaining = list(results)
    ordered = []
    for config in configs:
        for j, evr in enumerate(remaining):
            if evr.expectation_config is not None and _same(evr.expectation_config, config):
                ordered.append(remaining.pop(j))
                break
        else:
            raise RuntimeError(f"Great Expectations returned no result for {config.type}")
    return ordered


def _same(a: ExpectationConfiguration, b: ExpectationConfiguration) -> bool:
    if a.id is not None or b.id is not None:
        return bool(a.id == b.id and a.type == b.type)
    return bool(a.type == b.type and _kwargs(a) == _kwargs(b))


def _kwargs(config: ExpectationConfiguration) -> dict[str, Any]:
    return {key: value for key, value in config.kwargs.items() if key != "batch_id"}


def _gx_order(configs: list[ExpectationConfiguration]) -> list[int]:
    """Positions in the order GX's validator evaluates a suite: grouped by column, first seen first."""
    groups: dict[Any, list[int]] = {}
    for i, config in enumerate(configs):
        column = config.kwargs.get("column")
        groups.setdefault(column if isinstance(column, str) else _NO_COLUMN, []).append(i)
    return [i for positions in groups.values() for i in positions]


def _suite_meta(gx_result: ExpectationSuiteValidationResult | None) -> tuple[dict[str, Any], str]:
    """GX's meta when GX validated all of the whole frame, else the same keys for an in-memory batch."""
    if gx_result is not None:
        return dict(gx_result.meta), str(gx_result.batch_id)
    name = f"mlops-tasks-{uuid.uuid4().hex[:12]}"
    meta = {
        "great_expectations_version": gx.__version__,
        "batch_spec": {"batch_data": "PandasDataFrame"},
        # GX also stores an md5 of the whole frame here ("pandas_data_fingerprint"); hashing
        # costs more than the fast path's whole scan, so it is left out.
        "batch_markers": {"ge_load_time": dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")},
        "active_batch_definition": {
            "datasource_name": name,
            "data_connector_name": "fluent",
            "data_asset_name": name,
            "batch_identifiers": {"dataframe": "<DATAFRAME>"},
        },
    }
    return meta, f"{name}-{name}"
