"""In-process tests of the serving building blocks: input parsing, the log writer and reader."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from mlops_tasks.errors import DatasetNotFoundError, InvalidInputError, ModelLoadError
from mlops_tasks.serving.inputs import InputParser
from mlops_tasks.serving.model import ColumnSpec, load_model, parse_signature
from mlops_tasks.serving.predlog import (
    PredictionLogWriter,
    prune_prediction_log,
    read_prediction_log,
)

SPECS = [ColumnSpec("n", "long"), ColumnSpec("x", "double"), ColumnSpec("s", "string")]


def parse(doc, specs=SPECS, fast=None):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return InputParser(specs, fast_dtype=fast).parse(body, "application/json")


def test_all_json_formats_give_the_same_columns():
    rows = [[1, 2.5, "a"], [2, 3.0, "b"]]
    records = [{"n": 1, "x": 2.5, "s": "a"}, {"n": 2, "x": 3.0, "s": "b"}]
    docs = [
        {"dataframe_split": {"columns": ["n", "x", "s"], "data": rows}},
        {"dataframe_records": records},
        {"instances": records},
        {"instances": rows},
        {"inputs": {"n": [1, 2], "x": [2.5, 3.0], "s": ["a", "b"]}},
        {"inputs": records, "params": {"ignored": True}},
    ]
    for doc in docs:
        parsed = parse(doc)
        assert parsed.n_rows == 2 and parsed.matrix is None
        assert parsed.columns["n"].dtype == np.int64 and parsed.columns["n"].tolist() == [1, 2]
        assert parsed.columns["x"].dtype == np.float64
        assert parsed.columns["x"].tolist() == [2.5, 3.0]
        assert parsed.columns["s"].tolist() == ["a", "b"]


def test_integral_floats_accepted_in_integer_columns_but_fractions_refused():
    assert parse({"dataframe_records": [{"n": 3.0, "x": 1, "s": "a"}]}).columns["n"].tolist() == [3]
    with pytest.raises(InvalidInputError) as err:
        parse({"dataframe_records": [{"n": 3.5, "x": 1, "s": "a"}]})
    assert err.value.status == 422 and err.value.columns == ["n"]


def test_booleans_are_not_numbers():
    with pytest.raises(InvalidInputError) as err:
        parse({"dataframe_records": [{"n": True, "x": 1.0, "s": "a"}]})
    assert err.value.columns == ["n"] and "boolean" in str(err.value)


def test_records_with_a_missing_key_name_the_column():
    with pytest.raises(InvalidInputError) as err:
        parse({"dataframe_records": [{"n": 1, "x": 1.0, "s": "a"}, {"n": 1, "x": 1.0}]})
    assert err.value.columns == ["s"] and "missing" in str(err.value)


def test_duplicate_and_non_string_column_names_are_400():
    with pytest.raises(InvalidInputError) as err:
        parse({"dataframe_split": {"columns": ["n", "n", "s"], "data": [[1, 2, "a"]]}})
    assert err.value.status == 400 and err.value.columns == ["n"]
    with pytest.raises(InvalidInputError) as err:
        parse({"dataframe_split": {"columns": [1, 2, 3], "data": [[1, 2, "a"]]}})
    assert err.value.status == 400


def test_two_format_keys_are_refused():
    with pytest.raises(InvalidInputError) as err:
        parse({"instances": [], "inputs": []})
    assert err.value.status == 400 and "exactly one" in str(err.value)


def test_non_utf8_body_is_400():
    with pytest.raises(InvalidInputError) as err:
        parse(b"\xff\xfe{")
    assert err.value.status == 400


def test_fast_path_matrix_and_fallbacks():
    specs = [ColumnSpec("a", "double"), ColumnSpec("b", "long")]
    fast = np.dtype("float64")
    parsed = parse({"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2], [3, 4]]}}, specs, fast)
    assert parsed.matrix is not None and parsed.matrix.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    # a fraction in the long column leaves the fast path and is refused by name
    with pytest.raises(InvalidInputError) as err:
        parse({"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2.5]]}}, specs, fast)
    assert err.value.columns == ["b"]
    # other column order: the general path reorders
    parsed = parse({"dataframe_split": {"columns": ["b", "a"], "data": [[2, 1.5]]}}, specs, fast)
    assert parsed.matrix is None and parsed.columns["a"].tolist() == [1.5]


def test_csv_body():
    body = b"n,x,s\n1,2.5,a\n2,,b\n"
    parsed = InputParser(SPECS).parse(body, "text/csv")
    assert parsed.columns["n"].tolist() == [1, 2]
    assert np.isnan(parsed.columns["x"][1]) and parsed.has_nan
    with pytest.raises(InvalidInputError) as err:
        InputParser(SPECS).parse(b"n,x,s\n1,abc,a\n", "text/csv")
    assert err.value.columns == ["x"]


def test_no_signature_passes_columns_through():
    parsed = parse({"dataframe_split": {"columns": ["p", "q"], "data": [[1, "z"]]}}, specs=[])
    assert list(parsed.columns) == ["p", "q"]


def test_parse_signature_tensor_and_missing():
    assert parse_signature({}) == ([], None)
    tensor = {"signature": {"inputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float64"}}]'}}
    assert parse_signature(tensor) == ([], None)


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nope"))
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelLoadError, match="no MLmodel"):
        load_model(str(tmp_path / "m"))
    (tmp_path / "m" / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    with pytest.raises(ModelLoadError, match="no sklearn flavor"):
        load_model(str(tmp_path / "m"))
    (tmp_path / "m" / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: model.pkl\n    serialization_format: pickle\n"
    )
    (tmp_path / "m" / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match="Cannot deserialize"):
        load_model(str(tmp_path / "m"))


def test_extra_columns_policy_ignore_drops_them_reject_names_them():
    doc = {"dataframe_records": [{"n": 1, "x": 2.5, "s": "a", "customer_id": "c9"}]}
    parsed = parse(doc)
    assert sorted(parsed.column_arrays) == ["n", "s", "x"]
    body = json.dumps(doc).encode()
    with pytest.raises(InvalidInputError, match="unexpected columns") as info:
        InputParser(SPECS, extra_columns="reject").parse(body, "application/json")
    assert info.value.status == 422 and info.value.columns == ["customer_id"]
    split = {"dataframe_split": {"columns": ["n", "x", "s", "id"], "data": [[1, 2.0, "a", 7]]}}
    assert parse(split, fast=np.dtype("float64")).n_rows == 1  # the fast path falls back, no error
    with pytest.raises(ValueError, match="extra_columns"):
        InputParser(SPECS, extra_columns="keep")  # type: ignore[arg-type]


def test_registry_uri_without_any_store_names_where_it_looked(tmp_path, monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLOPS_MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match="no store at .*state/mlflow.db") as info:
        load_model("models:/churn/1")
    assert "--tracking-uri" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created, no ./mlflow.db


def test_store_uris_precedence(monkeypatch):
    from mlops_tasks.serving.model import resolve_store_uris

    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert resolve_store_uris() == ("sqlite:///env.db", "sqlite:///env.db")
    assert resolve_store_uris("http://a:5000", "http://r:5000") == ("http://a:5000", "http://r:5000")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://env-registry:5000")
    assert resolve_store_uris("http://a:5000") == ("http://a:5000", "http://env-registry:5000")


# -- prediction log ------------------------------------------------------------------------------


def _writer(sink, **kw):
    return PredictionLogWriter(str(sink), ["a", "b"], "m", "3", "blue", **kw)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_writer_round_trip_and_hour_partitions(tmp_path, fmt):
    w = _writer(tmp_path, fmt=fmt, flush_interval_s=600)
    w.start()
    t0 = datetime(2026, 3, 1, 10, 59, 59, tzinfo=UTC).timestamp()
    w.append(["r1", "r1"], [t0, t0], np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0, 1]))
    w.append(["r2"], [t0 + 2], {"a": np.array([5.0]), "b": np.array([6.0])}, np.array([1]))
    w.close()
    assert w.stats.written_rows == 3 and w.stats.files_written == 2
    assert (tmp_path / "date=2026-03-01" / "hour=10").is_dir()
    assert (tmp_path / "date=2026-03-01" / "hour=11").is_dir()
    df = read_prediction_log(str(tmp_path))
    assert df["request_id"].tolist() == ["r1", "r1", "r2"]
    assert df["a"].tolist() == [1.0, 3.0, 5.0] and df["prediction"].tolist() == [0, 1, 1]
    assert set(df["model_version"]) == {"3"} and set(df["served_by"]) == {"blue"}
    only_11 = read_prediction_log(str(tmp_path), start="2026-03-01T11:00:00")
    assert only_11["request_id"].tolist() == ["r2"]
    only_10 = read_prediction_log(str(tmp_path), end=datetime(2026, 3, 1, 11, tzinfo=UTC))
    assert only_10["request_id"].tolist() == ["r1", "r1"]


def test_writer_flushes_in_background(tmp_path):
    w = _writer(tmp_path, flush_interval_s=0.05)
    w.start()
    w.append(["r"], [time.time()], np.array([[1.0, 2.0]]), np.array([1]))
    deadline = time.time() + 10
    while w.stats.written_rows < 1 and time.time() < deadline:
        time.sleep(0.02)
    assert w.stats.written_rows == 1
    w.close()


def test_writer_drops_and_counts_when_buffer_is_full(tmp_path):
    w = _writer(tmp_path, flush_interval_s=600, max_pending_rows=2)
    w.append(["a", "a"], [time.time()] * 2, np.zeros((2, 2)), np.zeros(2))
    w.append(["b"], [time.time()], np.zeros((1, 2)), np.zeros(1))
    w.close()
    assert w.stats.dropped_rows == 1 and w.stats.written_rows == 2


def test_feature_named_like_a_log_column_is_prefixed(tmp_path):
    w = PredictionLogWriter(str(tmp_path), ["timestamp", "x"], "m", "1", "s")
    w.append(["r"], [time.time()], np.array([[7.0, 8.0]]), np.array([1]))
    w.close()
    df = read_prediction_log(str(tmp_path))
    assert df["feature_timestamp"].tolist() == [7.0]
    assert str(df["timestamp"].dt.tz) == "UTC"


def test_retention_prunes_old_partitions(tmp_path):
    now = datetime.now(UTC)
    old = now - timedelta(days=3)
    for when in (old, now):
        part = tmp_path / f"date={when:%Y-%m-%d}" / f"hour={when:%H}"
        part.mkdir(parents=True, exist_ok=True)
        (part / "x.parquet").write_bytes(b"")
    assert prune_prediction_log(str(tmp_path), retention_hours=48) == 1
    assert not (tmp_path / f"date={old:%Y-%m-%d}").exists()
    assert (tmp_path / f"date={now:%Y-%m-%d}" / f"hour={now:%H}" / "x.parquet").exists()
    # the writer prunes at start too
    part = tmp_path / f"date={old:%Y-%m-%d}" / f"hour={old:%H}"
    part.mkdir(parents=True)
    (part / "y.parquet").write_bytes(b"")
    w = _writer(tmp_path, retention_hours=24)
    w.start()
    w.close()
    assert w.stats.pruned_files == 1 and not part.exists()


def test_reader_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        read_prediction_log(str(tmp_path / "missing"))
    assert read_prediction_log(str(tmp_path)).empty


def test_writer_repeats_request_ids_over_their_rows(tmp_path):
    w = _writer(tmp_path, flush_interval_s=600)
    t = time.time()
    w.append(
        ["x", "y"],
        [t, t + 1],
        np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        np.array([1, 0, 1]),
        row_counts=[2, 1],
    )
    w.close()
    df = read_prediction_log(str(tmp_path))
    assert df["request_id"].tolist() == ["x", "x", "y"]
    assert df["b"].tolist() == [2.0, 4.0, 6.0] and df["prediction"].tolist() == [1, 0, 1]
    assert df["timestamp"].iloc[2] > df["timestamp"].iloc[1]
