"""The training pipeline: load → validate → split → train → evaluate vs champion → register.

Run it from the Prefect UI (its parameters are one form), from Python, or from
the command line: ``python -m mlops_tasks.flows.training --drift 0.5``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from mlops_tasks import tasks
from mlops_tasks.blocks import resolve_config_blocks
from mlops_tasks.errors import QualityGateError
from mlops_tasks.flows.entry import prepare_command
from mlops_tasks.flows.failures import typed_failure_message
from mlops_tasks.settings import resolve_mlflow_config, state_dir
from mlops_tasks.stages.inputs import demo_dataset
from mlops_tasks.stages.params import DEFAULT_GATE, DemoData, TrainingPipelineParams, require_model_name

__all__ = [
    "DEFAULT_GATE",
    "DemoData",
    "TrainingPipelineParams",
    "TrainingPipelineResult",
    "demo_dataset",
    "main",
    "training_pipeline",
]


class TrainingPipelineResult(BaseModel):
    """What the training pipeline registered and why."""

    model_name: str
    version: int
    created: bool = Field(..., description="False when this data and spec were registered before.")
    run_id: str
    data_fingerprint: str
    gate_passed: bool
    gate_reasons: list[str]
    promoted: bool
    champion_version: int | None
    tracking_uri: str


@flow(name="training-pipeline", log_prints=False)
@typed_failure_message
def training_pipeline(
    params: TrainingPipelineParams = TrainingPipelineParams(),  # noqa: B008 (frozen defaults)
) -> TrainingPipelineResult:
    """Validate, train, evaluate against the champion and register a model.

    Args:
        params: Data, training spec, gate and registry settings.

    Returns:
        The registered version, the gate verdict and whether it was promoted.

    Raises:
        DataValidationError: The data failed its expectation suite (nothing trained).
        QualityGateError: The candidate failed its gate and ``fail_on_gate`` is set
            (it is registered with the verdict, without alias).

    Example:
        ```python
        from mlops_tasks.flows.training import DemoData, TrainingPipelineParams, training_pipeline
        result = training_pipeline(TrainingPipelineParams(model_name="churn-classifier",
                                                  demo=DemoData(drift=0.3)))
        print(result.version, result.gate_passed)
        ```
    """
    require_model_name(params.model_name, "training-pipeline")
    params = resolve_config_blocks(params)  # blocks are resolved here, at the edge
    logger = get_run_logger()
    spec = params.dataset or demo_dataset(params.demo)
    dataset = tasks.load_dataset(spec)

    suite_path = Path(params.expectation_suite or state_dir() / "expectations" / f"{params.model_name}.json")
    if not suite_path.exists():
        if not params.suggest_suite_if_missing:
            from mlops_tasks.errors import ConfigurationError

            raise ConfigurationError(
                f"Expectation suite {suite_path} does not exist; create it with the "
                "suggest-expectations task or set suggest_suite_if_missing."
            )
        logger.info("No suite at %s yet: suggesting one from %s", suite_path, spec.uri)
        tasks.suggest_expectations(dataset.frame, suite_path, range_margin=params.suite_range_margin)
    tasks.validate_data(dataset.frame, suite_path, dataset_name=dataset.info.name)

    train, holdout = tasks.split_dataset(
        dataset.frame,
        target=params.training.target,
        holdout_fraction=params.holdout_fraction,
        seed=params.split_seed,
        stratify=params.training.task == "classification",
    )
    trained = tasks.train_model(
        train,
        params.training,
        data=dataset.info,
        segment_column=params.segment_column,
        mlflow_config=params.mlflow,
        cluster=params.search_cluster,
    )
    report = tasks.evaluate_model(
        trained,
        holdout,
        params.gate,
        model_name=params.model_name,
        segment_column=params.segment_column,
        compare_to_champion=params.compare_to_champion,
        fail_on_error=False,
        mlflow_config=params.mlflow,
    )
    version = tasks.register_model(trained, report, params.model_name, mlflow_config=params.mlflow)
    champion = report.champion.version if report.champion else None
    promoted = False
    if report.passed and params.promote_on_pass:
        promotion = tasks.promote_model(params.model_name, version.version, mlflow_config=params.mlflow)
        promoted, champion = promotion.changed, promotion.version
    result = TrainingPipelineResult(
        model_name=params.model_name,
        version=version.version,
        created=version.created,
        run_id=trained.run_id,
        data_fingerprint=trained.data_fingerprint,
        gate_passed=report.passed,
        gate_reasons=report.failed_reasons,
        promoted=promoted,
        champion_version=champion,
        tracking_uri=resolve_mlflow_config(params.mlflow).tracking_uri,
    )
    logger.info(
        "%s version %s: gate %s, champion %s",
        params.model_name,
        version.version,
        "passed" if report.passed else "failed",
        champion,
    )
    if not report.passed and params.fail_on_gate:
        raise QualityGateError(
            f"{params.model_name} version {version.version} failed its quality gate: "
            + "; ".join(report.failed_reasons),
            report=report,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: run the pipeline on demo data and print what was registered."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drift", type=float, default=0.0)
    parser.add_argument("--model-name", default="churn-classifier")
    args = parser.parse_args(argv)
    prepare_command("python -m mlops_tasks.flows.training")
    params = TrainingPipelineParams(
        model_name=args.model_name, demo=DemoData(rows=args.rows, seed=args.seed, drift=args.drift)
    )
    try:
        result = training_pipeline(params)
    except QualityGateError as exc:
        print(f"quality gate failed: {exc}", file=sys.stderr)
        return 1
    cfg = resolve_mlflow_config(params.mlflow)
    print(f"registered version {result.version}" + ("" if result.created else " (unchanged data and spec)"))
    verdict = "passed" if result.gate_passed else "failed"
    alias = "challenger" if result.gate_passed else "no alias"
    print(f"gate: {verdict} ({alias}); champion: version {result.champion_version}")
    artifacts = f" --default-artifact-root {cfg.artifact_location}" if cfg.artifact_location else ""
    print(f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {cfg.tracking_uri}{artifacts} --port 5000")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
