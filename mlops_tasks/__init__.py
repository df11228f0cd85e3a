"""mlops-tasks: Prefect 3 tasks and flows from raw data to a monitored model endpoint.

``mlops_tasks.__version__`` is the installed distribution's version; a copy of the package
without its metadata (as in a model image, which carries the server's files alone) reads
``"0+unknown"``.
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__: str = version("mlops-tasks")
except PackageNotFoundError:  # copied without its metadata
    __version__ = "0+unknown"
