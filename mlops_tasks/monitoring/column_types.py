"""Column types and the choice of test, as Evidently 0.7 decides them."""

from __future__ import annotations

import pandas as pd

from mlops_tasks.monitoring.models import ColumnType, StatTestName

__all__ = ["INTEGER_CARDINALITY_LIMIT", "SMALL_REFERENCE_ROWS", "choose_stattest", "infer_column_type"]

INTEGER_CARDINALITY_LIMIT = 10
"""Integer columns with at most this many distinct values are categorical
(``evidently.core.datasets.INTEGER_CARDINALITY_LIMIT``)."""
SMALL_REFERENCE_ROWS = 1000
"""References of at most this many values get the small-sample tests (ks, chi-square, z)."""


def infer_column_type(series: pd.Series) -> ColumnType:
    """Evidently 0.7's column type inference (``evidently.core.datasets.infer_column_type``).

    Floats are numerical; integers are categorical up to 10 distinct values and
    numerical above; strings are categorical unless more than half the values are
    distinct (then text); bools and pandas categoricals are categorical.

    Example:
        ```python
        import pandas as pd
        from mlops_tasks.monitoring import infer_column_type
        assert infer_column_type(pd.Series([1, 2, 3])) == "categorical"
        assert infer_column_type(pd.Series([1.5, 2.0])) == "numerical"
        ```
    """
    name = series.dtype.name
    if name.startswith("float"):
        return "numerical"
    if name.startswith("int"):
        return "categorical" if series.nunique() <= INTEGER_CARDINALITY_LIMIT else "numerical"
    if name in ("string", "str"):
        return "text" if series.nunique() > series.count() * 0.5 else "categorical"
    if name == "object":
        values = series.dropna()
        if values.empty:
            return "unknown"
        if isinstance(values.iloc[0], str) and isinstance(values.iloc[-1], str):
            return "text" if series.nunique() > series.count() * 0.5 else "categorical"
        return "unknown"
    if name in ("bool", "category"):
        return "categorical"
    if name.startswith("datetime"):
        return "datetime"
    return "unknown"


def choose_stattest(column_type: str, reference_rows: int, distinct_values: int) -> StatTestName:
    """Evidently 0.7's default test (``registry._get_default_stattest``) for a column.

    Args:
        column_type: ``numerical`` or ``categorical``.
        reference_rows: Non-null reference values.
        distinct_values: Distinct non-null values over reference and current together.

    Returns:
        The test name.

    Example:
        ```python
        from mlops_tasks.monitoring import choose_stattest
        assert choose_stattest("numerical", 50_000, 900) == "wasserstein"
        assert choose_stattest("categorical", 500, 4) == "chisquare"
        ```
    """
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if column_type == "numerical" and distinct_values > 5:
            return "ks"
        return "chisquare" if distinct_values > 2 else "z"
    if column_type == "numerical" and distinct_values > 5:
        return "wasserstein"
    return "jensenshannon"
