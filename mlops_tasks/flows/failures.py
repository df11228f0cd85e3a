"""A failed flow run's state message: the typed error's own text, the traceback in the logs.

Prefect makes the state message of a run whose function raised ``"Flow run encountered an
exception: <Type>: <text>"`` and logs the traceback; the UI shows that message above the
logs' tracebacks. For this project's typed errors (:class:`~mlops_tasks.errors.MLOpsError`,
whose messages name the object, what was expected and the next step) the message is the
error's text alone; the traceback is still logged, once, by the flow's logger. Other
exceptions keep Prefect's handling.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.states import Failed

from mlops_tasks.errors import MLOpsError

__all__ = ["MESSAGE_LIMIT", "typed_failure_message"]

P = ParamSpec("P")
R = TypeVar("R")

#: Longest state message written (the flows' other state messages use the same limit).
MESSAGE_LIMIT = 1000


def typed_failure_message(fn: Callable[P, R]) -> Callable[P, R]:
    """Put under ``@flow``: a typed error ends the run Failed with the error's text as message.

    Calling the flow still raises the same exception (the Failed state carries it), so
    callers and parent flows see no difference; only the run's state message changes.

    Example:
        ```python
        from prefect import flow
        from mlops_tasks.errors import ConfigurationError

        @flow
        @typed_failure_message
        def my_flow() -> None:
            raise ConfigurationError("give model_name")
        ```
    """

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MLOpsError as exc:
            if FlowRunContext.get() is None:  # called as a plain function (flow.fn): just raise
                raise
            get_run_logger().error("%s: %s", type(exc).__name__, exc, exc_info=True)
            return Failed(message=str(exc)[:MESSAGE_LIMIT], data=exc)  # type: ignore[return-value]  # a Prefect State: the run ends with its message, callers get the exception

    # Prefect validates parameters against the signature of the function it runs, resolving
    # string annotations in that function's globals (this module's, for the wrapper): give
    # it the flow's signature with the annotations resolved in the flow's own module.
    try:
        run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    except NameError:  # a name only imported under TYPE_CHECKING: leave them as written
        pass
    return run
