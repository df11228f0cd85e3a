"""S3 credentials for Dask workers, carried by a worker plugin (Dask's own mechanism, not the environment)."""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["S3Credentials"]


class S3Credentials(WorkerPlugin):
    """A Dask worker plugin carrying S3 client arguments to every worker (and to restarted ones).

    Registered with ``client.register_plugin(S3Credentials(...))``; workers read the arguments
    back with :func:`s3_kwargs_on_worker`. The secret travels through Dask's comms (use a
    ``tls://`` scheduler across machines), never through the workers' environment.

    Example:
        ```python
        plugin = S3Credentials("mlops-s3-job1", S3Config(endpoint_url=url).client_kwargs())
        client.register_plugin(plugin)
        ```
    """

    def __init__(self, name: str, client_kwargs: dict[str, Any]) -> None:
        self.name = name
        self.client_kwargs = dict(client_kwargs)

    def setup(self, worker: Any) -> None:
        """Nothing to do: the arguments are read when a partition is."""

    def teardown(self, worker: Any) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:  # never print the secret
        return f"S3Credentials({self.name!r})"
