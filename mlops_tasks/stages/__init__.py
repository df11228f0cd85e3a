"""The pipeline's stages as plain functions of their parameter models, without Prefect.

One function per stage, each taking a pydantic parameter model and returning the result
model the next stage takes (all JSON-serialisable):

| stage | function | parameters | result |
|---|---|---|---|
| validate | `validation.run_validate` | `ValidateParams` | `ValidationReport` |
| train | `training.run_train` | `TrainParams` | `TrainedModel` |
| evaluate | `training.run_evaluate` | `EvaluateParams` | `EvaluationReport` |
| register | `training.run_register` | `RegisterParams` | `RegisteredVersion` |
| build-image | `endpoint.run_build_image` | `BuildImageParams` | `ImageRef` |
| deploy | `endpoint.run_deploy` | `DeploymentPipelineParams` | `DeploymentRecord` |
| rollback | `endpoint.run_rollback` | `RollbackParams` | `DeploymentRecord` |
| drift-check | `monitoring.run_drift_check` | `DriftCheckParams` | `DriftReport` |
| batch-score | `scoring.run_batch_score` | `BatchPredictParams` | `BatchPredictions`|

The command line ``mlops-tasks <stage>`` (:mod:`mlops_tasks.cli`) runs them; the Airflow
provider (``providers/airflow``) runs that command line in the mlops-tasks environment. The
Prefect flows take the same parameter models (:mod:`mlops_tasks.stages.params`).
"""

__all__: list[str] = []
