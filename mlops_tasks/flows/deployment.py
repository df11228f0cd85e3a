"""The deployment pipeline: pick a version → prepare → verify (smoke) → shift traffic → promote.

With the ``local`` target there is no image: the slots run the registered model
directly. With the ``docker`` target the version's model image is built (or reused) and
verified first (``verify_model_image`` with the smoke rows), then deployed.
``champion`` moves only when the deployment succeeds. Run it from the
Prefect UI, from Python, or from the command line::

    python -m mlops_tasks.flows.deployment --endpoint churn --port 8000 --strategy canary --bake 30

``python -m mlops_tasks.flows.deployment --rollback --endpoint churn`` puts the previous version back.
"""

from __future__ import annotations

import argparse
import json
import sys

from prefect import flow, get_run_logger

from mlops_tasks import tasks
from mlops_tasks.blocks import resolve_config_blocks
from mlops_tasks.deploy.ab_state import refuse_during_ab_test
from mlops_tasks.deploy.models import DeploymentRecord, EndpointSpec, RolloutSpec
from mlops_tasks.errors import MLOpsError
from mlops_tasks.flows.entry import prepare_command
from mlops_tasks.flows.failures import typed_failure_message
from mlops_tasks.stages.inputs import demo_dataset, label_column, pick_version, smoke_rows_of
from mlops_tasks.stages.params import DemoData, DeploymentPipelineParams, RollbackParams, require_model_name

__all__ = [
    "DeploymentPipelineParams",
    "RollbackParams",
    "deployment_pipeline",
    "main",
    "resolve_target",
    "rollback_deployment_flow",
    "stop_endpoint_flow",
]


def resolve_target(params: DeploymentPipelineParams) -> tuple[str, EndpointSpec]:
    """The target kind and endpoint: explicit parameters > ``target_block`` > defaults.

    Raises:
        BlockNotFoundError: ``target_block`` names no Deploy Target block.

    Example:
        ```python
        kind, endpoint = resolve_target(DeploymentPipelineParams(target_block="prod"))
        ```
    """
    if not params.target_block:
        return params.target, params.endpoint
    from mlops_tasks.blocks import DeployTarget, load_block

    block = load_block(DeployTarget, params.target_block)
    kind = params.target if "target" in params.model_fields_set else block.kind
    endpoint = params.endpoint if "endpoint" in params.model_fields_set else block.endpoint_spec()
    return kind, endpoint


def _smoke_rows(params: DeploymentPipelineParams, version: int):
    spec = params.smoke_dataset or demo_dataset(DemoData())
    target = label_column(
        params.model_name,
        version,
        target_column=params.target_column,
        smoke_dataset=params.smoke_dataset,
        mlflow_config=params.mlflow,
    )
    return smoke_rows_of(tasks.load_dataset(spec).frame, target, params.smoke_rows)


def _build_and_verify(params: DeploymentPipelineParams, endpoint: EndpointSpec, version: int, rows) -> None:
    """Docker target: build (or reuse) the version's image and verify it unless it already was.

    A Deploy Target block's docker settings (engine, router image, image repository) are
    kept for the endpoint first, so the deployment and later runs use them.
    """
    from mlops_tasks.containerize import DockerEngine, image_verified
    from mlops_tasks.deploy.targets.docker import DockerTarget

    target = DockerTarget(endpoint)
    if params.target_block:
        from mlops_tasks.blocks import DeployTarget, load_block

        given = load_block(DeployTarget, params.target_block).docker_options()
        target.use_options(
            target.options.pin(
                engine_url=given.get("docker_host"),
                router_image=given.get("router_image"),
                repository=given.get("server_image"),
            )
        )
    engine = DockerEngine(base_url=target.options.engine_url)
    ref = tasks.build_model_image(
        params.model_name, version, spec=target.image_spec(), engine=engine, mlflow_config=params.mlflow
    )
    if not image_verified(ref, params.model_name, version, mlflow_config=params.mlflow):
        tasks.verify_model_image(ref, rows, engine=engine, mlflow_config=params.mlflow)


@flow(name="deployment-pipeline", log_prints=False)
@typed_failure_message
def deployment_pipeline(
    params: DeploymentPipelineParams = DeploymentPipelineParams(),  # noqa: B008 (frozen defaults)
) -> DeploymentRecord:
    """Deploy a registered version blue-green behind the endpoint's HAProxy router.

    Args:
        params: Model, version, endpoint, strategy and MLflow settings.

    Returns:
        The deployment record (``succeeded`` or ``noop``); champion then matches what serves.

    Raises:
        EndpointDeployError: The new version did not make it (``SlotStartError``,
            ``SmokeTestError``, ``GuardBreachError``, ``RolloutError``); the previous one
            kept, or got back, all traffic.
        EndpointBusyError: Another deployment of the endpoint runs.
        AbTestRunningError: An A/B test runs on the endpoint (nothing was built or started).
        BlockNotFoundError: ``target_block`` or ``mlflow.block`` names no saved block.

    Example:
        ```python
        from mlops_tasks.flows.deployment import DeploymentPipelineParams, deployment_pipeline
        record = deployment_pipeline(DeploymentPipelineParams(model_name="churn-classifier"))
        print(record.outcome, record.version)
        ```
    """
    require_model_name(params.model_name, "deployment-pipeline")
    params = resolve_config_blocks(params)  # blocks are resolved here, at the edge
    refuse_during_ab_test(params.endpoint.name, f"deploying {params.model_name}")  # before any image build
    logger = get_run_logger()
    kind, endpoint = resolve_target(params)
    version = pick_version(params.model_name, params.version, params.mlflow)
    logger.info(
        "Deploying %s version %s to endpoint %s (%s, %s)",
        params.model_name,
        version,
        endpoint.name,
        kind,
        params.rollout.strategy,
    )
    rows = _smoke_rows(params, version)
    if kind == "docker":
        _build_and_verify(params, endpoint, version, rows)
    record = tasks.deploy_blue_green(
        params.model_name,
        version,
        endpoint=endpoint,
        rollout=params.rollout,
        target=kind,
        smoke_rows=rows,
        mlflow_config=params.mlflow,
        force=params.force,
    )
    tasks.describe_deployment(endpoint.name)
    return record


@flow(name="rollback-deployment", log_prints=False)
@typed_failure_message
def rollback_deployment_flow(params: RollbackParams = RollbackParams()) -> DeploymentRecord:  # noqa: B008
    """Put the previous version back at 100 % and move ``champion`` back with it.

    Example:
        ```python
        from mlops_tasks.flows.deployment import RollbackParams, rollback_deployment_flow
        rollback_deployment_flow(RollbackParams(endpoint_name="churn"))
        ```
    """
    return tasks.rollback_deployment(
        params.endpoint_name, rollout=params.rollout, mlflow_config=params.mlflow
    )


@flow(name="stop-endpoint", log_prints=False)
@typed_failure_message
def stop_endpoint_flow(endpoint_name: str = "churn") -> bool:
    """Stop an endpoint's router and slots (``make stop``)."""
    return tasks.stop_endpoint(endpoint_name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-name", default="churn-classifier")
    parser.add_argument("--version", type=int)
    parser.add_argument("--endpoint", default="churn")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--strategy", default="canary", choices=["all_at_once", "canary", "linear", "shadow"])
    parser.add_argument("--bake", type=float, default=10.0, help="bake seconds per step")
    parser.add_argument("--termination-wait", type=float, default=10.0)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--rollback", action="store_true")
    action.add_argument("--stop", action="store_true")
    action.add_argument("--describe", action="store_true")
    return parser


#: A demo row for the printed curl command (the churn demo's features).
_EXAMPLE = {
    "dataframe_split": {
        "columns": [
            "age",
            "tenure_months",
            "monthly_charges",
            "support_calls",
            "data_usage_gb",
            "num_products",
            "plan",
            "contract",
            "payment_method",
            "country",
        ],
        "data": [[42, 12, 70.5, 1, 3.2, 2, "basic", "month-to-month", "card", "US"]],
    }
}


def _report(record: DeploymentRecord, endpoint: str) -> int:
    """Print what serves now (read back, not taken from the record) and a curl example."""
    from mlops_tasks.deploy import describe_deployment

    info = describe_deployment(endpoint)
    if info.live_version is None:
        print(
            f"{record.kind} {record.outcome} for {record.model_name} version {record.version}, but "
            f"endpoint {endpoint!r} serves nothing now (router running: "
            f"{info.router_running}); see --describe",
            file=sys.stderr,
        )
        return 1
    print(
        f"{record.kind} {record.outcome}: {info.model_name} version {info.live_version} "
        f"live in slot {info.live_color} at {info.url}"
    )
    print(
        f"curl -s -X POST {info.url}/invocations -H 'Content-Type: application/json' "
        f"-d '{json.dumps(_EXAMPLE)}'"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: deploy (default), ``--rollback``, ``--stop`` or ``--describe`` an endpoint."""
    args = _parser().parse_args(argv)
    prepare_command("python -m mlops_tasks.flows.deployment")
    try:
        if args.stop:
            from mlops_tasks.deploy import stop_endpoint

            print("stopped" if stop_endpoint(args.endpoint) else "not running")
            return 0
        if args.describe:
            from mlops_tasks.deploy import describe_deployment

            print(describe_deployment(args.endpoint).model_dump_json(indent=2))
            return 0
        if args.rollback:
            record = rollback_deployment_flow(RollbackParams(endpoint_name=args.endpoint))
        else:
            record = deployment_pipeline(
                DeploymentPipelineParams(
                    model_name=args.model_name,
                    version=args.version,
                    endpoint=EndpointSpec(name=args.endpoint, port=args.port),
                    rollout=RolloutSpec(
                        strategy=args.strategy,
                        bake_seconds=args.bake,
                        termination_wait_s=args.termination_wait,
                    ),
                )
            )
    except MLOpsError as exc:
        print(f"deployment failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return _report(record, args.endpoint)


if __name__ == "__main__":
    raise SystemExit(main())
