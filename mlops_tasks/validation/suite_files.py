"""Expectation suite files: read and write GX 1.x ExpectationSuite JSON."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.exceptions as gx_exceptions
from great_expectations.compatibility.pydantic import ValidationError as GxPydanticValidationError
from great_expectations.core import ExpectationSuite
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

from mlops_tasks.errors import ConfigurationError

logger = logging.getLogger(__name__)

__all__ = ["load_suite", "write_suite"]


def load_suite(path: str | os.PathLike[str]) -> ExpectationSuite:
    """Read an expectation suite from a GX ExpectationSuite JSON file.

    The file holds what ``ExpectationSuite.to_json_dict()`` produces (the format a GX
    file Data Context stores): ``name``, ``expectations`` (each with ``type``, ``kwargs``,
    ``meta``), ``meta``, and optionally ``id``, ``suite_parameters``, ``notes``.

    Every expectation is checked before the suite is built, because GX itself only logs
    and silently drops an expectation whose type it does not know.

    Args:
        path: Path of the JSON file.

    Returns:
        The suite, belonging to no Data Context.

    Raises:
        ConfigurationError: The file is missing or unreadable, is not valid JSON, is not a
            GX 1.x suite, or holds an expectation of unknown type or with invalid kwargs.
            The message names the file and what to change.

    Example:
        ```python
        suite = load_suite("suites/churn.json")
        report = validate_dataframe(df, suite, dataset_name="churn-2026-11")
        ```
    """
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise ConfigurationError(f"Expectation suite path {path} is a folder; pass the suite's JSON file.")
    if not path.is_file():
        raise ConfigurationError(
            f"Expectation suite file {path} does not exist. Check the path, or create the "
            f"suite from reference data with suggest_expectations() and write_suite()."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"Cannot read expectation suite file {path}: {exc}. Check its permissions and "
            f"that it is a UTF-8 JSON file."
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"Expectation suite file {path} is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}). Fix the file, or regenerate it with suggest_expectations() "
            f"and write_suite()."
        ) from exc
    return _suite_from_dict(data, source=str(path))


def write_suite(suite: ExpectationSuite, path: str | os.PathLike[str]) -> Path:
    """Write an expectation suite as a GX ExpectationSuite JSON file.

    The file is ``suite.to_json_dict()`` with sorted keys and two-space indentation, the
    same layout a GX file Data Context uses. The write is atomic (temporary file, then
    rename) and missing parent folders are created.

    Args:
        suite: The suite to write.
        path: Destination file, usually ending in ``.json``.

    Returns:
        The absolute path written.

    Raises:
        ConfigurationError: ``suite`` is not an ExpectationSuite, or the file cannot be
            written (the message names the path).

    Example:
        ```python
        suite = suggest_expectations(reference_df, "churn")
        write_suite(suite, "suites/churn.json")
        assert load_suite("suites/churn.json") == suite
        ```
    """
    if not isinstance(suite, ExpectationSuite):
        raise ConfigurationError(
            f"write_suite() needs a great_expectations ExpectationSuite, got {type(suite).__name__}."
        )
    target = Path(path).expanduser().resolve()
    text = json.dumps(suite.to_json_dict(), indent=2, sort_keys=True) + "\n"
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # os.open applies the process umask, like a plain open() would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigurationError(
            f"Cannot write expectation suite {suite.name!r} to {target}: {exc}. Choose a writable location."
        ) from exc
    logger.info(
        "Wrote expectation suite %s (%d expectations) to %s",
        suite.name,
        len(suite.expectations),
        target,
    )
    return target


def _suite_from_dict(data: Any, *, source: str) -> ExpectationSuite:
    """Build a suite from its JSON dict, refusing anything GX would drop or reject."""
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"Expectation suite file {source} must hold a JSON object with 'name' and "
            f"'expectations', found a JSON {type(data).__name__}."
        )
    if "name" not in data and "expectation_suite_name" in data:
        raise ConfigurationError(
            f"Expectation suite file {source} is in the Great Expectations 0.x format "
            f"('expectation_suite_name'). Rename the key to 'name' and each expectation's "
            f"'expectation_type' to 'type', or regenerate the suite with suggest_expectations()."
        )
    expectations = data.get("expectations", [])
    if not isinstance(expectations, list):
        raise ConfigurationError(
            f"Expectation suite file {source}: 'expectations' must be a list, found "
            f"{type(expectations).__name__}."
        )
    for index, entry in enumerate(expectations):
        _check_expectation_entry(entry, index=index, source=source)
    try:
        suite = ExpectationSuite(**data)
    except TypeError as exc:
        allowed = "name, expectations, suite_parameters, meta, notes, id"
        raise ConfigurationError(
            f"Expectation suite file {source} has keys Great Expectations does not accept "
            f"({exc}); a suite may only have {allowed}."
        ) from exc
    except (ValueError, gx_exceptions.GreatExpectationsError) as exc:
        raise ConfigurationError(
            f"Expectation suite file {source} is not a valid expectation suite: {exc}"
        ) from exc
    if len(suite.expectations) != len(expectations):  # defensive: GX drops invalid entries
        raise ConfigurationError(
            f"Expectation suite file {source}: Great Expectations accepted only "
            f"{len(suite.expectations)} of {len(expectations)} expectations; fix the others."
        )
    return suite


def _check_expectation_entry(entry: Any, *, index: int, source: str) -> None:
    where = f"Expectation suite file {source}, expectations[{index}]"
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where} must be a JSON object, found {type(entry).__name__}.")
    if "type" not in entry:
        hint = (
            " It uses the Great Expectations 0.x key 'expectation_type'; rename it to 'type'."
            if "expectation_type" in entry
            else ""
        )
        raise ConfigurationError(f"{where} has no 'type'.{hint}")
    kind = entry["type"]
    try:
        ExpectationConfiguration(**entry).to_domain_obj()
    except gx_exceptions.ExpectationNotFoundError as exc:
        raise ConfigurationError(
            f"{where} has unknown expectation type {kind!r}. Use a Great Expectations "
            f"{gx.__version__} core expectation type (such as "
            f"expect_column_values_to_be_between) or remove it."
        ) from exc
    except (
        gx_exceptions.GreatExpectationsError,
        GxPydanticValidationError,
        TypeError,
        ValueError,
    ) as exc:
        message = " ".join(str(exc).split())
        raise ConfigurationError(
            f"{where} ({kind!r}) is invalid: {message}. Fix its kwargs or remove it."
        ) from exc
