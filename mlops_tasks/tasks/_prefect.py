"""What every task module shares: block resolution, the retry policy for transient failures, artifact keys."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from mlops_tasks.blocks import resolve_config_blocks
from mlops_tasks.errors import is_transient

__all__ = ["IO_RETRIES", "artifact_key", "resolves_blocks", "retry_transient"]

_F = TypeVar("_F", bound=Callable[..., Any])


def resolves_blocks(fn: _F) -> _F:
    """Resolve the blocks named in a task's arguments before its body runs (the edge's job).

    Every ``MlflowConfig`` / ``S3Config`` among the arguments (also inside models such as a
    ``DatasetSpec``) is replaced by plain settings with
    :func:`mlops_tasks.blocks.resolve_config_blocks`, so core code never loads a block.
    The signature and docstring stay the function's (``functools.wraps``).

    Args:
        fn: The task body; put this decorator below ``@task``.

    Returns:
        The wrapped function.

    Example:
        ```python
        @task(name="load-dataset")
        @resolves_blocks
        def load_dataset(spec: DatasetSpec) -> LoadedDataset: ...
        ```
    """

    @functools.wraps(fn)
    def with_resolved_blocks(*args: Any, **kwargs: Any) -> Any:
        args = tuple(resolve_config_blocks(value) for value in args)
        kwargs = {name: resolve_config_blocks(value) for name, value in kwargs.items()}
        return fn(*args, **kwargs)

    return with_resolved_blocks  # type: ignore[return-value]  # same signature through wraps


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
