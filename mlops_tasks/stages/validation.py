"""The validate stage without Prefect: the dataset against its Great Expectations suite.

Its own module so that the other stages' processes (``mlops-tasks train``, an Airflow task)
never import Great Expectations.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mlops_tasks.errors import ConfigurationError
from mlops_tasks.settings import state_dir
from mlops_tasks.stages.inputs import load_stage_data
from mlops_tasks.stages.params import require_model_name
from mlops_tasks.stages.stage_params import ValidateParams
from mlops_tasks.validation import (
    ValidationReport,
    load_suite,
    suggest_expectations,
    validate_dataframe,
    write_suite,
)

__all__ = ["run_validate"]

logger = logging.getLogger(__name__)


def run_validate(params: ValidateParams) -> ValidationReport:
    """Validate the dataset against its expectation suite (suggesting the suite when missing).

    Args:
        params: Model, dataset and suite settings.

    Returns:
        The report of a dataset that passed.

    Raises:
        DataValidationError: An expectation failed; ``exc.report`` holds the report.
        ConfigurationError: No model name, or no suite file and ``suggest_suite_if_missing`` off.

    Example:
        ```python
        from mlops_tasks.stages.stage_params import ValidateParams
        from mlops_tasks.stages.validation import run_validate
        report = run_validate(ValidateParams(model_name="churn-classifier"))
        ```
    """
    model_name = require_model_name(params.model_name, "validate")
    suite_path = Path(params.expectation_suite or state_dir() / "expectations" / f"{model_name}.json")
    if not suite_path.exists() and not params.suggest_suite_if_missing:
        raise ConfigurationError(
            f"Expectation suite {suite_path} does not exist; create it with the "
            "suggest-expectations task or set suggest_suite_if_missing."
        )
    loaded = load_stage_data(params)
    if not suite_path.exists():
        logger.info("No suite at %s yet: suggesting one from %s", suite_path, loaded.info.uri)
        suite = suggest_expectations(loaded.frame, suite_path.stem, range_margin=params.suite_range_margin)
        write_suite(suite, suite_path)
    report = validate_dataframe(loaded.frame, load_suite(suite_path), dataset_name=loaded.info.name)
    logger.info("%s", report.summary())
    return report
