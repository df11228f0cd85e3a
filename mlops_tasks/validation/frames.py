"""Checks on a DataFrame before Great Expectations sees it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_tasks.errors import ConfigurationError, EmptyDatasetError, SchemaError

__all__ = ["check_frame"]


def check_frame(df: Any, *, what: str) -> None:
    """Refuse a frame Great Expectations would check wrongly or not at all.

    Args:
        df: The object to check.
        what: How messages name it, e.g. ``"reference data"``.

    Raises:
        ConfigurationError: ``df`` is not a DataFrame.
        EmptyDatasetError: ``df`` has no rows or no columns.
        SchemaError: Column names are not strings, are duplicated, or differ only in
            case (GX matches column names case-insensitively on pandas).

    Example:
        ```python
        check_frame(df, what="dataset 'train'")
        ```
    """
    if not isinstance(df, pd.DataFrame):
        raise ConfigurationError(f"The {what} must be a pandas DataFrame, got {type(df).__name__}.")
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise EmptyDatasetError(
            f"The {what} is empty ({df.shape[0]} rows x {df.shape[1]} columns); "
            f"check the source that produced it."
        )
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise SchemaError(
            f"The {what} has non-string column names {bad[:10]!r}; rename them "
            f"to strings (e.g. df.columns = df.columns.astype(str))."
        )
    duplicated = sorted(set(df.columns[df.columns.duplicated()]))
    if duplicated:
        raise SchemaError(f"The {what} has duplicate column names {duplicated!r}; make them unique.")
    # GX 1.x resolves a column name case-insensitively on pandas (first casefold match
    # wins), so with both "age" and "AGE" present it may silently check the wrong one.
    by_fold: dict[str, list[str]] = {}
    for column in df.columns:
        by_fold.setdefault(column.casefold(), []).append(column)
    clashes = [names for names in by_fold.values() if len(names) > 1]
    if clashes:
        raise SchemaError(
            f"The {what} has column names that differ only in case "
            f"{clashes!r}; Great Expectations matches column names case-insensitively and "
            f"could check the wrong column. Rename them."
        )
