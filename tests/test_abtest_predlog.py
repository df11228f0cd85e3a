"""Prediction log: nullable variant and subject columns; older partitions still read."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mlops_tasks.serving.predlog import PredictionLogWriter, read_prediction_log


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_variant_and_subject_are_logged_and_old_files_read(tmp_path, fmt):
    sink = str(tmp_path / "log")
    old = PredictionLogWriter(sink, ["x"], "m", "1", "blue-1", fmt=fmt)
    old.start()
    old.append(["old-1"], [time.time()], np.array([[1.0]]), np.array([0]))  # no A/B headers
    old.close()
    new = PredictionLogWriter(sink, ["x"], "m", "2", "green-1", fmt=fmt)
    new.start()
    new.append(
        ["r1", "r2", "r3"], [time.time()] * 3, np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([1, 1, 0, 1]),
        row_counts=[2, 1, 1], variants=["B", "B", None], subjects=["alice", "bob", None],
    )  # fmt: skip
    new.close()
    frame = read_prediction_log(sink).set_index("request_id")
    assert (
        list(frame.loc["r1", "variant"]) == ["B", "B"] and list(frame.loc["r1", "subject"]) == ["alice"] * 2
    )
    assert frame.loc["r2", "subject"] == "bob"
    for rid in ("r3", "old-1"):
        assert frame.loc[rid, "variant"] is None or frame.loc[rid, "variant"] != frame.loc[rid, "variant"]
