"""Serve every deployment of this project from one local process.

    .venv/bin/python -m deployments.serve

needs a Prefect API: ``prefect server start`` in another shell and
``PREFECT_API_URL=http://127.0.0.1:4200/api`` here. Each flow of ``flows/``
gets one deployment with a description, tags and its typed default
parameters; the training pipeline is triggered from the UI's "Run" button
(its parameters are one form).
"""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.training import training_pipeline


def build_deployments() -> list[RunnerDeployment]:
    """The deployments this project serves (one per flow)."""
    return [
        training_pipeline.to_deployment(
            name="training-pipeline",
            description="Validate, train, evaluate against the champion and register a model.",
            tags=["mlops", "training"],
        ),
    ]


def main() -> None:
    """Serve all deployments until interrupted."""
    serve(*build_deployments())


if __name__ == "__main__":
    main()
