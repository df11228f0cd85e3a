"""Turn a request body into model input, checked against the signature.

Accepted bodies are MLflow's scoring formats: a JSON object with exactly one of
``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` (``params``
may sit beside it and is ignored), or CSV (``Content-Type: text/csv``).

Numeric-only models take a fast path: the rows of a ``dataframe_split`` body go
straight into one NumPy matrix in signature order, with no pandas on the way. Every
other body is converted column by column to the dtypes MLflow's schema enforcement
uses (``long`` -> int64, ``double`` -> float64, ``string`` -> object, ...), so the
estimator sees exactly what ``mlflow.pyfunc`` would give it.

Every problem raises :class:`~mlops_tasks.errors.InvalidInputError` carrying the HTTP
status (400 for a body that cannot be read, 422 for one that does not fit the
signature) and the offending column names.

Columns the signature does not name (an id the model does not use) follow the
``extra_columns`` policy: ``ignore`` (the default, as MLflow's scoring server does: they
are dropped before the model sees the rows) or ``reject`` (422 naming them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

import numpy as np

from mlops_tasks.errors import InvalidInputError
from mlops_tasks.serving.model import INTEGER_TYPES, ColumnSpec

_fast_loads: Callable[[bytes | str], Any]
try:  # orjson is ~5x faster; the stdlib parser is the fallback (and reads NaN/Infinity)
    import orjson

    _fast_loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _fast_loads = json.loads

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_IGNORED_KEYS = frozenset({"params"})
_NUMBER_TYPES = frozenset({int, float})
_INT_TYPES = frozenset({int})
ExtraColumns = Literal["ignore", "reject"]
EXTRA_COLUMN_POLICIES: tuple[ExtraColumns, ...] = ("ignore", "reject")


@dataclass
class ParsedInput:
    """Rows of one request, ready for the model.

    Exactly one of ``matrix`` (fast path: an ``(n_rows, n_columns)`` array in signature
    order) and ``columns`` (column name -> array in the signature's dtype) is set.

    Example:
        ```python
        parsed = InputParser(columns).parse(b'{"inputs": {"x": [1.0]}}', "application/json")
        assert parsed.n_rows == 1
        ```
    """

    n_rows: int
    matrix: np.ndarray | None = None
    columns: dict[str, np.ndarray] | None = None
    has_nan: bool = False

    @property
    def column_arrays(self) -> dict[str, np.ndarray]:
        """``columns`` of an input that is not a matrix.

        Raises:
            ValueError: The input holds a matrix instead.
        """
        if self.columns is None:
            raise ValueError("the parsed input holds a matrix, not columns")
        return self.columns


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


#: Deepest JSON nesting a body may have (orjson's own limit; MLflow's formats need 4).
MAX_JSON_DEPTH = 1024
#: Media types ``/invocations`` reads (others get 415).
ACCEPTED_CONTENT_TYPES = ("application/json", "text/csv")


def _nesting_error(exc: BaseException | None = None) -> InvalidInputError:
    error = InvalidInputError(
        f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels; MLflow's scoring formats "
        "need at most 4 (an object holding a list of rows).",
        status=400,
    )
    error.__cause__ = exc
    return error


def decode_json(body: bytes) -> Any:
    """Parse a JSON body (NaN and Infinity literals are accepted, as MLflow does).

    Args:
        body: Raw request bytes (UTF-8).

    Returns:
        The decoded value.

    Raises:
        InvalidInputError: 400 when the body is not UTF-8, is nested deeper than
            :data:`MAX_JSON_DEPTH` levels, or is not valid JSON.

    Example:
        ```python
        assert decode_json(b'{"a": NaN}')["a"] != 0
        ```
    """
    try:
        return _fast_loads(body)
    except ValueError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise _nesting_error(exc) from exc
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"The body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at position {exc.start}); "
            "send JSON encoded as UTF-8.",
            status=400,
        ) from exc
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise _nesting_error(exc) from exc
    except ValueError as exc:
        raise InvalidInputError(f"Malformed JSON body: {exc}", status=400) from exc


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, checked against the accepted ones.

    Args:
        content_type: The header value (empty: JSON is assumed, as MLflow's clients send).

    Returns:
        ``application/json`` or ``text/csv``.

    Raises:
        InvalidInputError: 415 naming the accepted types, for any other type or for a
            charset other than UTF-8.

    Example:
        ```python
        assert media_type("application/json; charset=utf-8") == "application/json"
        ```
    """
    if not content_type.strip():
        return "application/json"
    kind, _, params = content_type.partition(";")
    kind = kind.strip().lower()
    if kind not in ACCEPTED_CONTENT_TYPES:
        raise InvalidInputError(
            f"Unsupported Content-Type {content_type.strip()[:100]!r}; /invocations accepts "
            f"{' or '.join(ACCEPTED_CONTENT_TYPES)}.",
            status=415,
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise InvalidInputError(
                f"Unsupported charset {value.strip()[:40]!r} in Content-Type; send the body as UTF-8.",
                status=415,
            )
    return kind


class InputParser:
    """Parse and check request bodies against one model signature.

    Args:
        columns: The signature's input columns; empty for a model without a column
            signature (then no column checks are made).
        fast_dtype: When set, ``dataframe_split`` bodies of plain numbers are read into
            one matrix of this dtype (the model must accept a matrix in signature order).
        extra_columns: ``ignore`` drops columns the signature does not name (MLflow's
            scoring server does the same); ``reject`` answers 422 naming them.

    Example:
        ```python
        from mlops_tasks.serving.model import ColumnSpec
        parser = InputParser([ColumnSpec("a", "double"), ColumnSpec("b", "long")])
        parsed = parser.parse(b'{"dataframe_records": [{"a": 1.5, "b": 2}]}', "application/json")
        assert parsed.columns["b"].dtype == "int64"
        ```
    """

    def __init__(
        self,
        columns: list[ColumnSpec],
        fast_dtype: np.dtype | None = None,
        extra_columns: ExtraColumns = "ignore",
    ) -> None:
        if extra_columns not in EXTRA_COLUMN_POLICIES:
            raise ValueError(f"extra_columns must be one of {EXTRA_COLUMN_POLICIES}, got {extra_columns!r}")
        self.extra_columns = extra_columns
        self.specs = list(columns)
        self.names = [c.name for c in self.specs]
        self._by_name = {c.name: c for c in self.specs}
        self.fast_dtype = fast_dtype
        self._int_positions = [i for i, c in enumerate(self.specs) if c.type in INTEGER_TYPES]

    # -- entry point -----------------------------------------------------------------

    def parse(self, body: bytes, content_type: str = "application/json") -> ParsedInput:
        """Parse one request body.

        Args:
            body: The raw body.
            content_type: The request's ``Content-Type`` (``text/csv`` selects CSV, other
                types than JSON and CSV get 415).

        Returns:
            The checked input.

        Raises:
            InvalidInputError: The body is unreadable (400), of an unsupported type (415)
                or does not fit the signature (422).
        """
        names: list[str]
        rows: list[Any] | None
        cols: list[Any] | None
        if media_type(content_type) == "text/csv":
            names, rows, cols = self._from_csv(body)
        else:
            names, rows, cols = self._from_json(decode_json(body))
        if rows is not None:
            if self.fast_dtype is not None and names == self.names:
                fast = self._fast_matrix(rows, self.fast_dtype)
                if fast is not None:
                    return fast
            return self._convert_rows(names, rows)
        assert cols is not None
        return self._convert_columns(names, cols)

    # -- formats ---------------------------------------------------------------------

    def _from_json(self, doc: Any) -> tuple[list[str], list[Any] | None, list[Any] | None]:
        if not isinstance(doc, dict):
            kind = "a JSON array" if isinstance(doc, list) else f"JSON {_type_name(doc)}"
            raise InvalidInputError(
                f"The body must be a JSON object with exactly one of the keys {list(FORMATS)}; got {kind}.",
                status=400,
            )
        keys = [k for k in doc if k not in _IGNORED_KEYS]
        formats = [k for k in keys if k in FORMATS]
        unknown = [k for k in keys if k not in FORMATS]
        if unknown or len(formats) != 1:
            detail = f"unknown key(s) {unknown}" if unknown else f"got keys {keys}"
            raise InvalidInputError(
                f"Unknown input format: {detail}; the body must hold exactly one of {list(FORMATS)}.",
                status=400,
            )
        fmt = formats[0]
        payload = doc[fmt]
        if fmt == "dataframe_split":
            return self._from_split(payload)
        if fmt == "dataframe_records":
            return self._from_records(payload, fmt)
        if fmt == "inputs" and isinstance(payload, dict):
            names = [str(k) for k in payload]
            cols = []
            for values in payload.values():
                cols.append(values if isinstance(values, list) else [values])
            lengths = {len(c) for c in cols}
            if len(lengths) > 1:
                raise InvalidInputError(
                    f"'inputs' columns have different lengths: "
                    f"{ {n: len(c) for n, c in zip(names, cols, strict=False)} }.",
                    status=400,
                )
            return names, None, cols
        # instances, or inputs given as a list
        if not isinstance(payload, list):
            raise InvalidInputError(
                f"'{fmt}' must be a list of records or rows (or, for 'inputs', an object of "
                f"columns); got {_type_name(payload)}.",
                status=400,
            )
        if payload and all(isinstance(item, dict) for item in payload):
            return self._from_records(payload, fmt)
        if payload and all(isinstance(item, list) for item in payload):
            return list(self.names), payload, None
        if payload and len(self.names) == 1 and not any(isinstance(item, (list, dict)) for item in payload):
            return list(self.names), [[v] for v in payload], None
        if not payload:
            return list(self.names), [], None
        raise InvalidInputError(
            f"'{fmt}' must hold only records (objects) or only rows (arrays).", status=400
        )

    def _from_split(self, payload: Any) -> tuple[list[str], list[Any], None]:
        if not isinstance(payload, dict):
            raise InvalidInputError(
                f"'dataframe_split' must be an object with 'columns' and 'data'; got {_type_name(payload)}.",
                status=400,
            )
        data = payload.get("data")
        if not isinstance(data, list):
            raise InvalidInputError("'dataframe_split' needs 'data', a list of rows.", status=400)
        columns = payload.get("columns", self.names)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidInputError("'dataframe_split.columns' must be a list of column names.", status=400)
        return columns, data, None

    def _from_records(self, payload: Any, fmt: str) -> tuple[list[str], list[Any], None]:
        if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
            raise InvalidInputError(f"'{fmt}' must be a list of objects (records).", status=400)
        if not payload:
            return list(self.names), [], None
        names: list[str] = list(payload[0])
        seen = set(names)
        for record in payload[1:]:
            for key in record:
                if key not in seen:
                    seen.add(key)
                    names.append(key)
        missing_marker = _Missing
        rows = [[r.get(n, missing_marker) for n in names] for r in payload]
        return names, rows, None

    def _from_csv(self, body: bytes) -> tuple[list[str], None, list[Any]]:
        import io

        import pandas as pd

        try:
            frame = pd.read_csv(io.BytesIO(body))
        except Exception as exc:
            raise InvalidInputError(f"Cannot parse the CSV body: {exc}", status=400) from exc
        names = [str(c) for c in frame.columns]
        cols = []
        for name in frame.columns:
            values = frame[name].tolist()
            cols.append(
                [None if isinstance(v, float) and math.isnan(v) else v for v in values]
                if frame[name].dtype == object
                else values
            )
        return names, None, cols

    # -- conversion ------------------------------------------------------------------

    def _check_names(self, names: list[str]) -> None:
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInputError(f"Duplicate columns {dupes}.", status=400, columns=dupes)
        if not self.specs:
            return
        given = set(names)
        missing = [c.name for c in self.specs if c.required and c.name not in given]
        extra = [n for n in names if n not in self._by_name] if self.extra_columns == "reject" else []
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing columns {missing}")
            if extra:
                parts.append(f"unexpected columns {extra} (this server rejects extra columns)")
            raise InvalidInputError(
                f"Input does not match the model signature: {'; '.join(parts)}. "
                f"Expected columns {self.names}.",
                status=422,
                columns=missing + extra,
            )

    def _fast_matrix(self, rows: list[Any], dtype: np.dtype) -> ParsedInput | None:
        """Rows of plain numbers in signature order -> one matrix, or None to fall back."""
        if not rows:
            return None
        types = set(map(type, chain.from_iterable(rows)))
        integer = dtype.kind in "iu"
        if not types <= (_INT_TYPES if integer else _NUMBER_TYPES):
            return None
        try:
            matrix = np.array(rows, dtype=dtype)
        except (ValueError, OverflowError):
            return None
        if matrix.ndim != 2 or matrix.shape[1] != len(self.names):
            return None
        has_nan = False
        if not integer:
            finite = np.isfinite(matrix)
            if not finite.all():
                return None  # let the column-wise path name the columns
            for pos in self._int_positions:
                col = matrix[:, pos]
                if not np.array_equal(col, np.floor(col)):
                    return None
        return ParsedInput(n_rows=matrix.shape[0], matrix=matrix, has_nan=has_nan)

    def _convert_rows(self, names: list[str], rows: list[Any]) -> ParsedInput:
        self._check_names(names)
        width = len(names)
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != width:
                got = len(row) if isinstance(row, list) else _type_name(row)
                raise InvalidInputError(
                    f"Row {i} has {got} values; expected {width} (columns {names}).", status=400
                )
        cols = [list(col) for col in zip(*rows, strict=False)] if rows else [[] for _ in names]
        return self._convert_columns(names, cols, checked=True)

    def _convert_columns(self, names: list[str], cols: list[list[Any]], checked: bool = False) -> ParsedInput:
        if not checked:
            self._check_names(names)
        n_rows = len(cols[0]) if cols else 0
        if n_rows == 0:
            raise InvalidInputError("Empty batch: the request holds no rows.", status=422)
        given = dict(zip(names, cols, strict=False))
        out: dict[str, np.ndarray] = {}
        problems: dict[str, str] = {}
        nan_cols: list[str] = []
        inf_cols: list[str] = []
        if not self.specs:  # no signature: let NumPy infer, no checks
            for name, values in given.items():
                if any(v is _Missing for v in values):
                    problems[name] = "is missing from some records"
                    continue
                out[name] = np.asarray(values)
            if problems:
                raise self._problem_error(problems)
            return ParsedInput(n_rows=n_rows, columns=out)
        for spec in self.specs:
            sent = given.get(spec.name)
            values = [None] * n_rows if sent is None else sent  # None: optional column not sent
            try:
                arr, has_nan, has_inf = _convert_column(spec, values)
            except _ColumnProblem as exc:
                problems[spec.name] = str(exc)
                continue
            if has_inf:
                inf_cols.append(spec.name)
            if has_nan:
                nan_cols.append(spec.name)
            out[spec.name] = arr
        if problems:
            raise self._problem_error(problems)
        if inf_cols:
            raise InvalidInputError(
                f"Columns {inf_cols} hold infinite values; send finite numbers.",
                status=422,
                columns=inf_cols,
            )
        return ParsedInput(n_rows=n_rows, columns=out, has_nan=bool(nan_cols))

    def _problem_error(self, problems: dict[str, str]) -> InvalidInputError:
        detail = "; ".join(f"column '{name}' {text}" for name, text in problems.items())
        return InvalidInputError(
            f"Wrong types for the model signature: {detail}.",
            status=422,
            columns=list(problems),
        )

    def nan_columns(self, parsed: ParsedInput) -> list[str]:
        """Names of the columns of ``parsed`` that hold NaN (for error messages).

        Example:
            ```python
            parser.nan_columns(parsed)  # -> ["monthly_charges"]
            ```
        """
        if parsed.columns is not None:
            return [n for n, a in parsed.columns.items() if a.dtype.kind == "f" and bool(np.isnan(a).any())]
        if parsed.matrix is not None and parsed.matrix.dtype.kind == "f":
            bad = np.isnan(parsed.matrix).any(axis=0)
            return [n for n, b in zip(self.names, bad, strict=False) if b]
        return []


class _MissingType:
    def __repr__(self) -> str:
        return "<missing>"


_Missing = _MissingType()


class _ColumnProblem(Exception):
    pass


def _first_bad(values: list[Any], ok: Any) -> Any:
    for v in values:
        if not ok(v):
            return v
    return None


def _convert_column(spec: ColumnSpec, values: list[Any]) -> tuple[np.ndarray, bool, bool]:
    """Convert one column's values to the signature dtype: (array, has_nan, has_inf)."""
    if any(v is _Missing for v in values):
        raise _ColumnProblem("is missing from some records")
    kind = spec.type
    if kind in ("double", "float"):
        bad = _first_bad(values, lambda v: v is None or (type(v) in _NUMBER_TYPES))
        if bad is not None:
            raise _ColumnProblem(f"expects numbers ({kind}), got {_type_name(bad)} {bad!r}")
        arr = np.array([math.nan if v is None else v for v in values], dtype=spec.dtype)
        nan = bool(np.isnan(arr).any())
        inf = bool(np.isinf(arr).any())
        return arr, nan, inf
    if kind in INTEGER_TYPES:
        bad = _first_bad(
            values,
            lambda v: type(v) is int or (type(v) is float and math.isfinite(v) and v.is_integer()),
        )
        if bad is not None:
            if isinstance(bad, float) and not math.isfinite(bad):
                raise _ColumnProblem(f"expects integers ({kind}), got non-finite {bad!r}")
            raise _ColumnProblem(f"expects integers ({kind}), got {_type_name(bad)} {bad!r}")
        try:
            return np.array([int(v) for v in values], dtype=spec.dtype), False, False
        except OverflowError as exc:
            raise _ColumnProblem(f"holds an integer too large for {kind}") from exc
    if kind == "boolean":
        bad = _first_bad(values, lambda v: isinstance(v, bool))
        if bad is not None:
            raise _ColumnProblem(f"expects booleans, got {_type_name(bad)} {bad!r}")
        return np.array(values, dtype=bool), False, False
    if kind == "string":
        bad = _first_bad(values, lambda v: v is None or isinstance(v, str))
        if bad is not None:
            raise _ColumnProblem(f"expects strings, got {_type_name(bad)} {bad!r}")
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr, False, False
    if kind == "datetime":
        import pandas as pd

        try:
            return pd.to_datetime(values).to_numpy(dtype="datetime64[ns]"), False, False
        except Exception as exc:
            raise _ColumnProblem(f"expects datetimes: {exc}") from exc
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr, False, False
