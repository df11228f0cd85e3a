"""Run the estimator on parsed input, the way ``mlflow.pyfunc`` would."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from mlops_tasks.errors import InvalidInputError, ModelLoadError
from mlops_tasks.serving.inputs import ExtraColumns, InputParser, ParsedInput
from mlops_tasks.serving.model import LoadedModel

logger = logging.getLogger("mlops_tasks.serving")

_FEATURE_NAME_WARNING = "X does not have valid feature names"


class Predictor:
    """Wrap a :class:`LoadedModel`: build its input and call ``predict``.

    The estimator gets a pandas DataFrame in signature order with MLflow's dtypes,
    which is what ``mlflow.pyfunc.load_model(uri).predict(df)`` hands the sklearn
    flavor. :meth:`warm_up` also tries the matrix fast path for numeric models and
    keeps it only if it gives bit-identical predictions on the model's input example.

    Args:
        model: The loaded model.
        fast_path: Allow the NumPy matrix fast path when the model qualifies.
        extra_columns: ``ignore`` (drop columns the signature does not name) or ``reject`` (422).

    Example:
        ```python
        predictor = Predictor(load_model("/models/churn"))
        predictor.warm_up()
        parsed = predictor.parser.parse(body, "application/json")
        predictions = predictor.predict(parsed)
        ```
    """

    def __init__(
        self, model: LoadedModel, fast_path: bool = True, extra_columns: ExtraColumns = "ignore"
    ) -> None:
        self.model = model
        self.extra_columns = extra_columns
        self.estimator = model.estimator
        self.names = model.column_names
        self.allow_fast = fast_path
        self.fast_dtype: np.dtype | None = None
        self.parser = InputParser(model.columns, extra_columns=extra_columns)

    def frame(self, columns: dict[str, np.ndarray]) -> Any:
        """A DataFrame of the columns in signature order."""
        import pandas as pd

        names = self.names or list(columns)
        return pd.DataFrame({name: columns[name] for name in names}, copy=False)

    def predict_frame(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Predict on column arrays (the general path)."""
        return np.asarray(self.estimator.predict(self.frame(columns)))

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Predict on a matrix in signature order (the fast path)."""
        return np.asarray(self.estimator.predict(matrix))

    @staticmethod
    def combine(items: list[ParsedInput]) -> ParsedInput:
        """Merge parsed requests that share a path (all matrices or all columns) into one.

        Example:
            ```python
            merged = Predictor.combine([parsed_a, parsed_b])
            assert merged.n_rows == parsed_a.n_rows + parsed_b.n_rows
            ```
        """
        if len(items) == 1:
            return items[0]
        n_rows = sum(p.n_rows for p in items)
        has_nan = any(p.has_nan for p in items)
        if items[0].matrix is not None:
            matrix = np.concatenate([p.matrix for p in items])
            return ParsedInput(n_rows=n_rows, matrix=matrix, has_nan=has_nan)
        columns = {
            name: np.concatenate([p.column_arrays[name] for p in items]) for name in items[0].column_arrays
        }
        return ParsedInput(n_rows=n_rows, columns=columns, has_nan=has_nan)

    def predict(self, parsed: ParsedInput) -> np.ndarray:
        """Predict all rows of a parsed (possibly combined) input in one call.

        Args:
            parsed: The input, with ``matrix`` (fast path) or ``columns``.

        Returns:
            One prediction per row, in order.

        Raises:
            InvalidInputError: 422 when the model refuses the rows.
        """
        try:
            if parsed.matrix is not None:
                return self.predict_matrix(parsed.matrix)
            return self.predict_frame(parsed.column_arrays)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            nan_cols = self.parser.nan_columns(parsed)
            hint = f" Columns with missing values (NaN/null): {nan_cols}." if nan_cols else ""
            raise InvalidInputError(
                f"The model cannot predict on this input: {type(exc).__name__}: {exc}.{hint}",
                status=422,
                columns=nan_cols,
            ) from exc

    def _example(self) -> ParsedInput | None:
        example = self.model.input_example
        if example is None:
            return None
        import orjson

        try:
            return self.parser.parse(orjson.dumps(example), "application/json")
        except Exception as exc:
            logger.warning("the model's input example does not fit its signature: %s", exc)
            return None

    def warm_up(self, rounds: int = 20) -> None:
        """Predict on the input example, and pick the fast path if it is exact.

        Raises:
            ModelLoadError: The model cannot predict its own input example.
        """
        example = self._example()
        if example is None:
            logger.warning("model has no usable input example: no warm-up, no fast path")
            return
        try:
            reference = self.predict_frame(example.column_arrays)
            for _ in range(rounds):
                self.predict_frame(example.column_arrays)
        except Exception as exc:
            raise ModelLoadError(
                f"Model {self.model.info.name} version {self.model.info.version} cannot "
                f"predict its own input example: {type(exc).__name__}: {exc}"
            ) from exc
        specs = self.model.columns
        if not (self.allow_fast and specs and all(c.numeric for c in specs)):
            return
        dtype = np.result_type(*[c.dtype for c in specs])
        matrix = np.column_stack([example.column_arrays[c.name].astype(dtype) for c in specs])
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_FEATURE_NAME_WARNING)
                fast = self.predict_matrix(matrix)
        except Exception as exc:
            logger.info("matrix fast path not usable for this model: %s", exc)
            return
        if fast.dtype != reference.dtype or not np.array_equal(fast, reference):
            logger.info("matrix fast path disabled: its predictions differ from the DataFrame's")
            return
        # sklearn warns on every matrix predict of a model fitted on a DataFrame.
        warnings.filterwarnings("ignore", message=_FEATURE_NAME_WARNING)
        for _ in range(rounds):
            self.predict_matrix(matrix)
        self.fast_dtype = dtype
        self.parser = InputParser(specs, fast_dtype=dtype, extra_columns=self.extra_columns)
        logger.info("matrix fast path enabled (dtype %s)", dtype)
