"""What a rollout asks of the model registry, behind one small interface.

:class:`MlflowRegistryAccess` reads and moves the ``champion`` alias in MLflow's model
registry; :class:`~mlops_tasks.deploy.memory.MemoryRegistryAccess` keeps it in memory
for tests.
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops_tasks.errors import PromotionRefusedError, SmokeTestError
from mlops_tasks.settings import MlflowConfig, ResolvedMlflowConfig

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["MlflowRegistryAccess", "RegistryAccess"]


class RegistryAccess(ABC):
    """The registry calls of a rollout (five abstract members).

    Example:
        ```python
        access = MlflowRegistryAccess(mlflow_config)
        print(access.champion("churn-classifier"))
        ```
    """

    @abstractmethod
    def champion(self, model_name: str) -> int | None:
        """The version alias ``champion`` points at (None: no alias)."""

    @abstractmethod
    def check_deployable(self, model_name: str, version: int, force: bool) -> None:
        """Raise unless ``version`` exists and passed its quality gate (or ``force``).

        Raises:
            PromotionRefusedError: The gate did not pass and ``force`` is False.
            ModelNotFoundError: No such version.
        """

    @abstractmethod
    def promote(self, model_name: str, version: int) -> int | None:
        """Move ``champion`` to ``version``; the version it pointed at before."""

    @abstractmethod
    def reference_predictions(self, model_name: str, version: int, rows: pd.DataFrame) -> np.ndarray:
        """The registered model's own predictions for ``rows`` (what the smoke test expects)."""

    @abstractmethod
    def input_example(self, handle: str, model_name: str, version: int) -> pd.DataFrame:
        """The model's input example (default smoke rows); ``handle`` is the prepared one.

        Raises:
            SmokeTestError: The model has no input example.
        """


class MlflowRegistryAccess(RegistryAccess):
    """The registry calls through an explicit MLflow client built from ``mlflow_config``."""

    def __init__(self, mlflow_config: MlflowConfig | None = None) -> None:
        self.mlflow_config = mlflow_config

    def _client(self) -> tuple[ResolvedMlflowConfig, MlflowClient]:
        from mlops_tasks.tracking import connect

        return connect(self.mlflow_config)

    def champion(self, model_name: str) -> int | None:
        from mlops_tasks.registry import get_alias_version

        _, client = self._client()
        mv = get_alias_version(client, model_name, "champion")
        return int(mv.version) if mv is not None else None

    def check_deployable(self, model_name: str, version: int, force: bool) -> None:
        from mlops_tasks.registry import TAG_GATE_PASSED, check_model_name, get_model_version

        check_model_name(model_name)
        _, client = self._client()
        mv = get_model_version(client, model_name, version)
        if mv.tags.get(TAG_GATE_PASSED) != "true" and not force:
            raise PromotionRefusedError(
                f"{model_name!r} version {version} has not passed its quality gate, so it is not "
                "deployed; pass force=True to deploy it anyway."
            )

    def promote(self, model_name: str, version: int) -> int | None:
        from mlops_tasks.registry import promote_model

        result = promote_model(model_name, version, force=True, mlflow_config=self.mlflow_config)
        return result.previous_version

    def reference_predictions(self, model_name: str, version: int, rows: pd.DataFrame) -> np.ndarray:
        from mlops_tasks.tracking import load_pyfunc_model, resolve_and_check

        model = load_pyfunc_model(resolve_and_check(self.mlflow_config), f"models:/{model_name}/{version}")
        return np.asarray(model.predict(rows))

    def input_example(self, handle: str, model_name: str, version: int) -> pd.DataFrame:
        from mlops_tasks.serving.model import download_model, load_model_folder

        if not Path(handle).is_dir():  # an image (docker target): read the example from the registry
            with tempfile.TemporaryDirectory(prefix="mlops-example-") as tmp:
                resolved, _ = self._client()
                folder = download_model(
                    f"models:/{model_name}/{version}",
                    tmp,
                    tracking_uri=resolved.tracking_uri,
                    registry_uri=resolved.registry_uri,
                )
                return self.input_example(str(folder), model_name, version)
        model = load_model_folder(handle)
        try:
            example = model.input_example
        finally:
            model.close()
        split = example.get("dataframe_split") if isinstance(example, dict) else None
        if not split:
            raise SmokeTestError(
                "No smoke rows were given and the model has no input example; pass smoke_rows."
            )
        return pd.DataFrame(split["data"], columns=split.get("columns"))
