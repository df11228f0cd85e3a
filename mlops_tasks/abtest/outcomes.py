"""Outcomes of an A/B test joined with the prediction log: the observations :func:`analyze` reads.

Delayed labels and business outcomes arrive later as a dataset (CSV/Parquet, local or
``s3://``) keyed by ``request_id`` or by ``subject``. The join keeps one row per logged
request of the test (a request of several rows counts once, with its first row's
prediction), so request-level guardrails and subject-level outcomes share one frame.
"""

from __future__ import annotations

import logging
from typing import Literal

import pandas as pd

from mlops_tasks.abtest.models import DERIVED_METRICS
from mlops_tasks.errors import ConfigurationError, OutcomesJoinError, SchemaError

__all__ = ["OutcomeKey", "join_outcomes", "ab_test_rows"]

logger = logging.getLogger(__name__)

#: What an outcomes dataset is keyed by.
OutcomeKey = Literal["request_id", "subject"]


def ab_test_rows(log: pd.DataFrame, since: pd.Timestamp | str | None = None) -> pd.DataFrame:
    """The prediction log's requests that were part of an A/B test (variant logged), one row each.

    Raises:
        SchemaError: The log has no ``variant`` column (no request went through a split).

    Example:
        ```python
        rows = ab_test_rows(read_prediction_log("logs/churn"), since=test.started_at)
        ```
    """
    if log.empty:
        return pd.DataFrame(columns=["request_id", "timestamp", "variant", "subject", "prediction"])
    if "variant" not in log.columns:
        raise SchemaError(
            "The prediction log has no 'variant' column: no request was answered under an A/B split "
            "in this window. Check that the test started and that traffic reaches the endpoint."
        )
    rows = log[log["variant"].notna()]
    if since is not None:
        rows = rows[rows["timestamp"] >= pd.Timestamp(since)]
    rows = rows.drop_duplicates("request_id", keep="first")
    if "subject" not in rows.columns:
        rows = rows.assign(subject=None)
    return rows.reset_index(drop=True)


def join_outcomes(
    rows: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    key: OutcomeKey,
    columns: list[str],
    unit: Literal["subject", "request"] = "subject",
) -> pd.DataFrame:
    """Attach outcome ``columns`` (and ``label``, when there) to the test's requests.

    Args:
        rows: The test's requests (:func:`ab_test_rows`).
        outcomes: The outcomes dataset (may be empty: nothing arrived yet).
        key: ``request_id`` or ``subject``.
        columns: Outcome columns to bring over (the primary metric's among them).
        unit: The test's unit; per-request assignment accepts only request-keyed outcomes.

    Returns:
        ``rows`` with the outcome columns (NaN where no outcome arrived yet).

    Raises:
        ConfigurationError: Subject-keyed outcomes for a per-request test.
        SchemaError: The outcomes lack the key or an outcome column.
        OutcomesJoinError: Outcomes arrived but none joins a request or subject of the test.

    Example:
        ```python
        obs = join_outcomes(rows, pd.read_csv("ratings.csv"), key="subject", columns=["rated_4plus"])
        ```
    """
    if unit == "request" and key != "request_id":
        raise ConfigurationError(
            "This A/B test assigns each request at random, so only outcomes keyed by request_id can be "
            f"joined; got outcomes keyed by {key!r}. Key the outcomes by request_id, or run a sticky test."
        )
    wanted = [key, *[c for c in columns if c not in DERIVED_METRICS]]
    if outcomes.empty:  # nothing arrived yet: every outcome is unknown
        outcomes = pd.DataFrame({c: pd.Series(dtype=object if c == key else float) for c in wanted})
    missing = [c for c in wanted if c not in outcomes.columns]
    if missing:
        raise SchemaError(
            f"The outcomes dataset lacks column(s) {missing}; found {list(outcomes.columns)}. It needs the "
            f"key {key!r} and every outcome column the test reads ({columns})."
        )
    keep = [c for c in dict.fromkeys([*wanted, *(["label"] if "label" in outcomes.columns else [])])]
    right = outcomes[keep].dropna(subset=[key]).astype({key: str}).drop_duplicates(key, keep="last")
    left = rows.drop(columns=[c for c in keep if c != key and c in rows.columns]).astype({key: str})
    joined = left.merge(right, on=key, how="left", indicator=True)
    matched = int((joined.pop("_merge") == "both").sum())
    if len(right) and not matched:
        raise OutcomesJoinError(
            f"None of the {len(right)} outcomes joins a {key} of the {len(rows)} requests of the test "
            f"(outcomes for another endpoint, window or id scheme?). Example outcome key: "
            f"{right[key].iloc[0]!r}; example logged {key}: {_first(rows, key)!r}."
        )
    logger.info("A/B outcomes: %d of %d requests joined on %s", matched, len(rows), key)
    return joined


def _first(rows: pd.DataFrame, column: str) -> object:
    values = rows[column].dropna() if column in rows.columns else pd.Series([], dtype=object)
    return values.iloc[0] if len(values) else None
