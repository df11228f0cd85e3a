"""Benchmark: our model image vs the one from ``mlflow models generate-dockerfile``.

Registers its own model (the churn demo pipeline) in a temporary MLflow SQLite
store, then builds on the same base image (Debian bookworm debootstrap minbase with
python3, venv and ca-certificates, made locally by :mod:`mlops_tasks.testing.docker`):

- ours: ``build_model_image`` with a cold wheelhouse cache and no cached layers
  (``cold_build_s`` times the whole call);
- MLflow's: the Dockerfile of ``mlflow models generate-dockerfile --env-manager local``
  for the same model URI, with its ``FROM`` pointed at the same base. That Dockerfile
  installs nginx with apt and MLflow with pip inside the build, so the benchmark adds
  two steps after ``FROM``: a virtualenv giving it ``python``/``pip`` (the base has
  no pip of its own) and the host's CA bundle (``PIP_CERT``), which pip needs here.
  The CA layer's size is subtracted from MLflow's size; our images never get it.

Sizes are what each image adds on top of the base. ``rebuild_new_version_s`` times
the whole ``build_model_image`` call (requirements, wheelhouse, build) for a newly
registered version of the model with unchanged dependencies. Every image made here
is removed at the end except the base image (reused while its recipe is unchanged).

The last line printed is::

    image: ours_mb=<n> mlflow_mb=<n> size_ratio=<ours/mlflow> cold_build_s=<n> rebuild_new_version_s=<n>

Usage: ``python bench/image.py [--keep-images]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
MODEL_NAME = "bench-image"
BENCH_LABEL = "org.mlops-tasks.bench"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def register_version(cfg, seed: int) -> int:
    """Train the demo churn pipeline on data drawn with ``seed`` and register it."""
    from mlops_tasks.data import DatasetInfo, fingerprint_frame, split_dataset
    from mlops_tasks.demo import make_churn_data
    from mlops_tasks.evaluation import MetricThreshold, QualityGate, evaluate_model
    from mlops_tasks.registry import register_model
    from mlops_tasks.training import TrainingSpec, train_model

    frame = make_churn_data(2000, seed=seed)
    info = DatasetInfo(
        uri=f"file:///bench/churn-{seed}.csv",
        name="churn",
        format="csv",
        rows=len(frame),
        columns=list(frame.columns),
        fingerprint=fingerprint_frame(frame),
    )
    train, holdout = split_dataset(frame, target="churned")
    trained = train_model(
        train, TrainingSpec(target="churned", params={"max_iter": 500}), data=info, mlflow_config=cfg
    )
    gate = QualityGate(thresholds=[MetricThreshold(metric="accuracy", min_value=0.5)])
    report = evaluate_model(
        trained, holdout, gate, compare_to_champion=False, fail_on_error=False, mlflow_config=cfg
    )
    return register_model(trained, report, MODEL_NAME, mlflow_config=cfg).version


def mlflow_image(client, model_uri: str, base: str, work: Path, tracking_uri: str) -> tuple[str, int]:
    """Build MLflow's generated Dockerfile on ``base``; return (image id, CA layer bytes)."""
    out = work / "mlflow-context"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    subprocess.run(
        [
            str(mlflow_cli),
            "models",
            "generate-dockerfile",
            "-m",
            model_uri,
            "-d",
            str(out),
            "--env-manager",
            "local",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    dockerfile = (out / "Dockerfile").read_text()
    lines = dockerfile.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("FROM "))
    lines[index : index + 1] = [
        f"FROM {base}",
        "# bench only: the base has no pip of its own, and pip here needs the host's CA bundle",
        "RUN python3 -m venv /opt/pyenv",
        "ENV PATH=/opt/pyenv/bin:$PATH",
        "COPY host-ca.crt /etc/ssl/certs/host-ca.crt",
        "ENV PIP_CERT=/etc/ssl/certs/host-ca.crt",
    ]
    (out / "Dockerfile").write_text("\n".join(lines) + "\n")
    shutil.copyfile(HOST_CA, out / "host-ca.crt")
    tag = f"mlops-tasks-bench/mlflow:{uuid.uuid4().hex[:8]}"
    image_id = None
    for chunk in client.api.build(
        path=str(out),
        tag=tag,
        rm=True,
        forcerm=True,
        decode=True,
        network_mode="host",
        labels={BENCH_LABEL: "true"},
    ):
        if "error" in chunk:
            raise RuntimeError(f"MLflow image build failed: {chunk['error']}")
        if isinstance(chunk.get("aux"), dict) and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
    image = client.images.get(image_id or tag)
    ca_bytes = sum(layer["Size"] for layer in image.history() if "host-ca.crt" in layer.get("CreatedBy", ""))
    return image.id, ca_bytes


def added_bytes(client, image_id: str, base: str) -> int:
    return int(client.images.get(image_id).attrs["Size"]) - int(client.images.get(base).attrs["Size"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-images", action="store_true", help="leave the built images on the engine")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")

    from mlops_tasks.containerize import ImageSpec, build_model_image, prune_model_images
    from mlops_tasks.settings import MlflowConfig
    from mlops_tasks.testing.docker import docker_client, ensure_base_image, remove_labelled

    client = docker_client()
    started = time.monotonic()
    base = ensure_base_image(client)
    log(f"base image {base} ready in {time.monotonic() - started:.1f}s")

    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        work = Path(tmp)
        os.environ["MLOPS_STATE_DIR"] = str(work / "state")
        tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
        cfg = MlflowConfig(
            tracking_uri=tracking_uri,
            artifact_location=(work / "artifacts").as_uri(),
            experiment_name="bench-image",
        )
        first = register_version(cfg, seed=11)
        log(f"registered {MODEL_NAME} v{first}")
        spec = ImageSpec(
            base_image=base, keep_images=5, labels={BENCH_LABEL: "true"}, wheel_cache_dir=work / "wheelhouse"
        )
        try:
            # Cold: no wheelhouse cache, no layer cache for this content.
            t0 = time.monotonic()
            ours = build_model_image(MODEL_NAME, first, spec=spec, mlflow_config=cfg, force_rebuild=True)
            cold = time.monotonic() - t0
            log(f"ours: {ours.reference} built cold in {cold:.1f}s")

            second = register_version(cfg, seed=12)
            t0 = time.monotonic()
            again = build_model_image(MODEL_NAME, second, spec=spec, mlflow_config=cfg)
            rebuild = time.monotonic() - t0
            log(
                f"ours: new version v{second} with unchanged deps rebuilt in {rebuild:.1f}s "
                f"(reused={again.reused})"
            )

            t0 = time.monotonic()
            theirs, ca_bytes = mlflow_image(client, f"models:/{MODEL_NAME}/{first}", base, work, tracking_uri)
            log(f"mlflow: image {theirs[:19]} built in {time.monotonic() - t0:.1f}s (CA layer {ca_bytes} B)")

            ours_mb = added_bytes(client, ours.image_id, base) / 1e6
            mlflow_mb = (added_bytes(client, theirs, base) - ca_bytes) / 1e6
        finally:
            if not args.keep_images:
                prune_model_images(MODEL_NAME, keep=0, engine=client)
                remove_labelled(client, BENCH_LABEL, "true")
    print(
        f"image: ours_mb={ours_mb:.1f} mlflow_mb={mlflow_mb:.1f} size_ratio={ours_mb / mlflow_mb:.3f} "
        f"cold_build_s={cold:.1f} rebuild_new_version_s={rebuild:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
