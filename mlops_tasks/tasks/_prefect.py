"""What every task module shares: the retry policy for transient failures and artifact keys."""

from __future__ import annotations

from typing import Any

from mlops_tasks.errors import is_transient

__all__ = ["IO_RETRIES", "artifact_key", "retry_transient"]


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure is a transient one.

    A transient failure is a server that did not answer
    (:func:`mlops_tasks.errors.is_transient`); a bad input fails at once.

    Args:
        task: The Prefect task (unused).
        task_run: The task run (unused).
        state: The failed state; its exception decides.

    Returns:
        True when the task should run again.

    Example:
        ```python
        @task(retries=2, retry_condition_fn=retry_transient)
        def read_registry() -> None: ...
        ```
    """
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as error:  # the result itself may re-raise
        exc = error
    return isinstance(exc, BaseException) and is_transient(exc)


#: Task options of the I/O tasks: two retries, 2 s then 10 s apart, for transient failures only.
IO_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_condition_fn": retry_transient,
}


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from free text (lowercase letters, digits and dashes only).

    Args:
        *parts: Joined with dashes.

    Returns:
        At most 100 characters.

    Example:
        ```python
        assert artifact_key("evaluation", "Churn_Model v2") == "evaluation-churn-model-v2"
        ```
    """
    text = "-".join(parts).lower()
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")[:100]
