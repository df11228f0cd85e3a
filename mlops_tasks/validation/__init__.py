"""Data validation with Great Expectations 1.x.

The stage has three parts:

1. :func:`suggest_expectations` infers an :class:`~great_expectations.core.ExpectationSuite`
   from a reference DataFrame (columns, types, null rates, numeric ranges, category sets).
2. :func:`write_suite` / :func:`load_suite` keep that suite as a GX ExpectationSuite JSON
   file, which people review and edit like any other config file.
3. :func:`validate_dataframe` validates a DataFrame against the suite and turns GX's
   result object into a JSON-serialisable :class:`ValidationReport`; by default it
   raises :class:`~mlops_tasks.errors.DataValidationError` when an expectation fails.

GX stays the engine of record: the expectation types the suggestion writes, and the
common built-in types that can be computed exactly, are computed by a vectorised fast
path that feeds GX's own expectation code (so the results are GX's result objects),
and everything else runs through GX itself in a fresh
in-memory (ephemeral) Data Context with analytics and progress bars switched off, so
nothing is written to disk and nothing is sent over the network. The report names the
path each expectation took.

The modules of the package: ``suite_files`` (load and write suites), ``suggestion``
(infer a suite), ``gx_runner`` (validate a frame), ``engine`` (fast path or GX per
expectation), ``fast_path``, ``fast_metrics`` and ``fast_scan`` (the vectorised
metrics), ``gx_batch`` (run GX itself), ``gx_results`` (GX result to report),
``report`` (the report models), ``messages`` (the error message's lines), ``data_docs``
(``report.json`` and GX's Data Docs page on disk), ``markdown`` (cell formatting of the report) and
``frames`` (checks on a frame before GX sees it). Publishing a report as a Prefect
artifact is the task layer's job (:func:`mlops_tasks.tasks.validate_data`).
"""

from mlops_tasks.validation.data_docs import SavedValidation, render_data_docs, save_validation_report
from mlops_tasks.validation.engine import FAST_EXPECTATION_TYPES
from mlops_tasks.validation.gx_runner import DEFAULT_RESULT_FORMAT, validate_dataframe
from mlops_tasks.validation.report import (
    MAX_PARTIAL_UNEXPECTED,
    ExpectationPath,
    FailedExpectation,
    ValidationReport,
)
from mlops_tasks.validation.suggestion import SUGGESTED_BY, suggest_expectations
from mlops_tasks.validation.suite_files import load_suite, write_suite

__all__ = [
    "DEFAULT_RESULT_FORMAT",
    "FAST_EXPECTATION_TYPES",
    "MAX_PARTIAL_UNEXPECTED",
    "ExpectationPath",
    "SUGGESTED_BY",
    "FailedExpectation",
    "SavedValidation",
    "ValidationReport",
    "load_suite",
    "render_data_docs",
    "save_validation_report",
    "suggest_expectations",
    "validate_dataframe",
    "write_suite",
]
