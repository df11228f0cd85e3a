"""The A/B test record of an endpoint: running (``abtest.json``) and ended (``abtest-history.jsonl``).

Kept apart from :mod:`mlops_tasks.deploy.ab` so the rollout can refuse to run during a
test (:func:`refuse_during_ab_test`) without importing the test's control.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from mlops_tasks.deploy import state
from mlops_tasks.deploy.models import AbSplit, now_iso
from mlops_tasks.errors import AbTestRunningError

__all__ = [
    "AbTestRecord",
    "ab_test_history",
    "close_ab_test",
    "refuse_during_ab_test",
    "running_ab_test",
    "save_ab_test",
]

logger = logging.getLogger(__name__)


class AbTestRecord(BaseModel):
    """A running (or ended) A/B test of one endpoint, kept in its folder.

    Example:
        ```python
        test = running_ab_test("churn")
        print(test.versions, test.split.percent_a) if test else None
        ```
    """

    id: str
    endpoint: str
    target: str
    model_name: str
    versions: dict[Literal["A", "B"], int] = Field(description="A: the champion, B: the challenger.")
    split: AbSplit
    started_at: str = Field(default_factory=now_iso)
    max_duration_h: float = Field(168.0, gt=0, description="The test ends for A after this long.")
    meta: dict[str, Any] = Field(default_factory=dict, description="The analysis spec and outcome source.")
    status: Literal["running", "ended"] = "running"
    winner: Literal["A", "B"] | None = None
    ended_at: str | None = None
    reason: str | None = None

    @property
    def elapsed_h(self) -> float:
        """Hours since the test started."""
        return float((pd.Timestamp.now(tz="UTC") - pd.Timestamp(self.started_at)).total_seconds() / 3600)


def _path(endpoint_name: str) -> Path:
    return state.endpoint_dir(endpoint_name) / "abtest.json"


def running_ab_test(endpoint_name: str) -> AbTestRecord | None:
    """The A/B test running on the endpoint, or ``None``."""
    path = _path(endpoint_name)
    if not path.exists():
        return None
    return AbTestRecord.model_validate_json(path.read_text(encoding="utf-8"))


def ab_test_history(endpoint_name: str) -> list[AbTestRecord]:
    """Every ended A/B test of the endpoint, oldest first."""
    path = state.endpoint_dir(endpoint_name) / "abtest-history.jsonl"
    if not path.exists():
        return []
    return [AbTestRecord.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def save_ab_test(record: AbTestRecord) -> None:
    """Write ``record`` as the endpoint's running test (atomically)."""
    path = _path(record.endpoint)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, path)


def refuse_during_ab_test(endpoint_name: str, action: str) -> None:
    """Raise :class:`AbTestRunningError` when an A/B test runs on the endpoint.

    Example:
        ```python
        refuse_during_ab_test("churn", "a deployment")
        ```
    """
    test = running_ab_test(endpoint_name)
    if test is not None:
        raise AbTestRunningError(
            f"Endpoint {endpoint_name!r} runs A/B test {test.id} ({test.model_name} version "
            f"{test.versions['A']} vs {test.versions['B']}, since {test.started_at}), so {action} is "
            "refused; wait for the test's verdict or end it (end_ab_test / the ab-evaluate deployment)."
        )


def close_ab_test(test: AbTestRecord, winner: Literal["A", "B"], reason: str) -> AbTestRecord:
    """Mark ``test`` ended (``winner``, ``reason``): into the history, out of ``abtest.json``."""
    ended = test.model_copy(
        update={"status": "ended", "winner": winner, "reason": reason, "ended_at": now_iso()}
    )
    folder = state.endpoint_dir(test.endpoint)
    with open(folder / "abtest-history.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(ended.model_dump(mode="json")) + "\n")
    _path(test.endpoint).unlink(missing_ok=True)
    logger.info("A/B test %s ended: %s (%s)", test.id, winner, reason)
    return ended
