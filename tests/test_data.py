"""Datasets: local and S3 reads, fingerprints, splits, and the bad inputs of each."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import free_port

from mlops_tasks.data import (
    DatasetSpec,
    fingerprint_frame,
    load_dataset,
    split_dataset,
    write_dataset,
)
from mlops_tasks.demo import make_churn_data
from mlops_tasks.errors import (
    ConfigurationError,
    DataError,
    DatasetNotFoundError,
    EmptyDatasetError,
    SchemaError,
    ServiceUnavailableError,
)
from mlops_tasks.settings import S3Config


def test_csv_and_parquet_round_trip_with_same_content(tmp_path, churn):
    csv = write_dataset(churn, str(tmp_path / "churn.csv"))
    parquet = write_dataset(churn, str(tmp_path / "churn.parquet"))
    from_csv = load_dataset(DatasetSpec(uri=csv))
    from_parquet = load_dataset(DatasetSpec(uri=parquet))
    assert from_csv.info.rows == from_parquet.info.rows == len(churn)
    assert from_csv.info.format == "csv" and from_parquet.info.format == "parquet"
    pd.testing.assert_frame_equal(from_parquet.frame, churn)
    assert from_parquet.info.fingerprint == fingerprint_frame(churn)
    assert from_csv.info.name == "churn.csv"


def test_fingerprint_changes_with_content(churn):
    changed = churn.copy()
    changed.loc[0, "age"] += 1
    assert fingerprint_frame(churn) == fingerprint_frame(churn.copy())
    assert fingerprint_frame(changed) != fingerprint_frame(churn)
    assert fingerprint_frame(churn.rename(columns={"age": "years"})) != fingerprint_frame(churn)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nope.csv"):
        load_dataset(DatasetSpec(uri=str(tmp_path / "nope.csv")))


def test_empty_file_and_header_only_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(EmptyDatasetError, match="empty"):
        load_dataset(DatasetSpec(uri=str(empty)))
    header = tmp_path / "header.csv"
    header.write_text("a,b,c\n")
    with pytest.raises(EmptyDatasetError, match="no rows"):
        load_dataset(DatasetSpec(uri=str(header)))


def test_unknown_suffix_and_corrupt_parquet(tmp_path):
    with pytest.raises(ConfigurationError, match="format"):
        load_dataset(DatasetSpec(uri=str(tmp_path / "data.xlsx")))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="could not be parsed as parquet"):
        load_dataset(DatasetSpec(uri=str(bad)))


def test_s3_round_trip(s3_bucket, churn):
    config, bucket = s3_bucket
    uri = write_dataset(churn, f"s3://{bucket}/raw/churn.parquet", s3=config)
    loaded = load_dataset(DatasetSpec(uri=uri, s3=config))
    pd.testing.assert_frame_equal(loaded.frame, churn)
    assert loaded.info.uri == uri


def test_s3_missing_bucket_and_key(s3_bucket):
    config, bucket = s3_bucket
    with pytest.raises(DatasetNotFoundError, match="no-such-bucket"):
        load_dataset(DatasetSpec(uri="s3://no-such-bucket-x1/data.csv", s3=config))
    with pytest.raises(DatasetNotFoundError, match="missing.csv"):
        load_dataset(DatasetSpec(uri=f"s3://{bucket}/missing.csv", s3=config))


def test_s3_endpoint_down_is_transient():
    config = S3Config(endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServiceUnavailableError, match="did not answer"):
        load_dataset(DatasetSpec(uri="s3://bucket/data.csv", s3=config))


def test_malformed_s3_uri():
    with pytest.raises(ConfigurationError, match="s3://bucket/key"):
        load_dataset(DatasetSpec(uri="s3:///no-bucket.csv"))


def test_split_is_deterministic_and_stratified(churn):
    train1, hold1 = split_dataset(churn, target="churned", seed=5)
    train2, hold2 = split_dataset(churn, target="churned", seed=5)
    _, hold3 = split_dataset(churn, target="churned", seed=6)
    pd.testing.assert_frame_equal(hold1, hold2)
    assert not hold1.equals(hold3)
    assert len(hold1) == 400 and len(train1) == 1600
    assert abs(hold1["churned"].mean() - churn["churned"].mean()) < 0.01


def test_split_bad_inputs(churn):
    with pytest.raises(SchemaError, match="label"):
        split_dataset(churn, target="label")
    with pytest.raises(ConfigurationError, match="holdout_fraction"):
        split_dataset(churn, target="churned", holdout_fraction=1.5)
    tiny = churn.head(10).copy()
    tiny.loc[0, "churned"] = 7
    with pytest.raises(DataError, match="single row"):
        split_dataset(tiny, target="churned")


def test_demo_generator_is_deterministic_and_drifts():
    a = make_churn_data(3000, seed=1)
    pd.testing.assert_frame_equal(a, make_churn_data(3000, seed=1))
    drifted = make_churn_data(3000, seed=1, drift=1.0)
    assert drifted["monthly_charges"].mean() > a["monthly_charges"].mean() + 15
    assert drifted["support_calls"].mean() > a["support_calls"].mean() + 1.5
    assert set(a["country"]) == {"US", "DE", "IN", "BR", "FR"}
    assert 0.1 < a["churned"].mean() < 0.5
    assert a["data_usage_gb"].isna().any()
    with pytest.raises(ConfigurationError, match="drift"):
        make_churn_data(10, drift=2.0)
