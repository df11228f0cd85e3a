"""Dask clusters: where the data-heavy stages run when one machine is not enough.

A :class:`DaskClusterSpec` names a cluster: an existing scheduler by its address
(``tcp://host:8786``, or ``tls://host:8786`` with certificates), or, without an address, a
``distributed.LocalCluster`` of worker *processes* that :func:`open_dask_client` starts for the
job and stops afterwards. Batch scoring (:mod:`mlops_tasks.scoring`), the distributed drift
statistics (:mod:`mlops_tasks.monitoring`) and the hyper-parameter search
(:mod:`mlops_tasks.training`) all take one.

Connecting is bounded: a scheduler that does not answer within ``connect_timeout_s`` raises
:class:`~mlops_tasks.errors.ClusterUnavailableError` in seconds instead of hanging.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlops_tasks.errors import ClusterUnavailableError, ConfigurationError

__all__ = [
    "DaskClusterSpec",
    "is_loopback_address",
    "open_dask_client",
    "use_or_open_client",
]

logger = logging.getLogger(__name__)

_SCHEMES = ("tcp", "tls")


class DaskClusterSpec(BaseModel):
    """A Dask cluster: an existing scheduler by address, or a local cluster of worker processes.

    Example:
        ```python
        from mlops_tasks.cluster import DaskClusterSpec
        local = DaskClusterSpec(n_workers=2)                       # started for the job
        remote = DaskClusterSpec(address="tls://dask.internal:8786",
                                 tls_ca_file="ca.pem", tls_client_cert="me.pem",
                                 tls_client_key="me.key")
        ```
    """

    model_config = ConfigDict(frozen=True)

    address: str | None = Field(
        None,
        description="Scheduler address (tcp://host:port or tls://host:port); empty: start a LocalCluster.",
    )
    n_workers: int = Field(2, ge=1, description="Worker processes of a local cluster.")
    threads_per_worker: int = Field(1, ge=1, description="Threads per worker process of a local cluster.")
    memory_limit: str | None = Field(
        "auto", description="Memory limit per local worker ('auto', '2GiB', or empty for none)."
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, description="Give up connecting to the scheduler after this."
    )
    tls_ca_file: str | None = Field(None, description="CA certificate file for a tls:// scheduler.")
    tls_client_cert: str | None = Field(None, description="Client certificate file for a tls:// scheduler.")
    tls_client_key: str | None = Field(None, description="Client key file for a tls:// scheduler.")

    @field_validator("address")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parsed = urlparse(value)
        if parsed.scheme not in _SCHEMES or not parsed.hostname or not parsed.port:
            raise ValueError(
                f"Dask scheduler address {value!r} must look like tcp://host:port or tls://host:port"
            )
        return value

    @property
    def is_remote(self) -> bool:
        """Whether the scheduler runs elsewhere (an address not on loopback)."""
        return self.address is not None and not is_loopback_address(self.address)

    def security(self) -> Any:
        """``distributed.Security`` for a ``tls://`` address (``None`` for tcp or a local cluster).

        Raises:
            ConfigurationError: A ``tls://`` address without the certificate files.
        """
        if self.address is None or not self.address.startswith("tls://"):
            return None
        missing = [
            name
            for name in ("tls_ca_file", "tls_client_cert", "tls_client_key")
            if getattr(self, name) is None
        ]
        if missing:
            raise ConfigurationError(
                f"Dask scheduler {self.address} is tls:// but {missing} are not set; pass the CA, "
                "client certificate and key files in the DaskClusterSpec."
            )
        from distributed.security import Security

        return Security(
            tls_ca_file=self.tls_ca_file,
            tls_client_cert=self.tls_client_cert,
            tls_client_key=self.tls_client_key,
            require_encryption=True,
        )


def is_loopback_address(address: str) -> bool:
    """Whether a scheduler address points at this machine's loopback interface.

    Example:
        ```python
        assert is_loopback_address("tcp://127.0.0.1:8786")
        assert not is_loopback_address("tls://dask.internal:8786")
        ```
    """
    host = urlparse(address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _connect(spec: DaskClusterSpec) -> Any:
    from distributed import Client

    try:
        return Client(spec.address, timeout=spec.connect_timeout_s, security=spec.security())
    except (OSError, TimeoutError) as exc:
        raise ClusterUnavailableError(
            f"The Dask scheduler at {spec.address} did not answer within {spec.connect_timeout_s:g} s "
            f"({type(exc).__name__}: {exc}); check the address and that the scheduler runs, or leave "
            "the address empty to start a local cluster."
        ) from exc


@contextlib.contextmanager
def open_dask_client(spec: DaskClusterSpec | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec``: connected by address, or to a LocalCluster started here.

    The local cluster runs ``n_workers`` worker processes (not threads) on 127.0.0.1 with no
    dashboard, and is closed when the block ends; a client to an existing scheduler is closed
    without touching the cluster.

    Args:
        spec: The cluster; ``None`` is a default local cluster (2 workers, 1 thread each).

    Yields:
        The connected client.

    Raises:
        ClusterUnavailableError: No scheduler answered at the address in time.
        ConfigurationError: A ``tls://`` address without certificates.

    Example:
        ```python
        with open_dask_client(DaskClusterSpec(n_workers=2)) as client:
            print(client.scheduler_info()["workers"].keys())
        ```
    """
    spec = spec or DaskClusterSpec()
    if spec.address is not None:
        client = _connect(spec)
        logger.info("Connected to the Dask scheduler at %s", spec.address)
        try:
            yield client
        finally:
            client.close()
        return
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=spec.n_workers,
        threads_per_worker=spec.threads_per_worker,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit=spec.memory_limit or 0,
    )
    client = Client(cluster)
    logger.info("Started a local Dask cluster of %d worker processes", spec.n_workers)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@contextlib.contextmanager
def use_or_open_client(cluster: DaskClusterSpec | None, client: Any = None) -> Iterator[Any]:
    """``client`` when one is given (left open), else :func:`open_dask_client` of ``cluster``.

    Example:
        ```python
        with use_or_open_client(spec, client) as dask_client:
            dask_client.map(...)
        ```
    """
    if client is not None:
        yield client
        return
    with open_dask_client(cluster) as opened:
        yield opened
