"""Validation reports on disk, with Great Expectations Data Docs beside each.

:func:`save_validation_report` writes ``report.json`` (the :class:`ValidationReport`) and,
when the report still carries GX's result object (``report.gx_result``, set by
:func:`~mlops_tasks.validation.validate_dataframe` whichever path computed each result),
``data-docs.html``: the validation-results page rendered by GX's own Data Docs renderer
(``ValidationResultsPageRenderer`` and ``DefaultJinjaPageView``, the ones GX's site builder
uses), so the page shows every expectation, passed or failed, as GX shows it. Like GX's
own sites, the page loads its stylesheets and scripts from public CDNs.

Example:
    ```python
    saved = save_validation_report(report)           # <state dir>/validation/<dataset>/<time>/
    print(saved.report_path, saved.data_docs_path)
    ```
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from mlops_tasks.errors import ConfigurationError
from mlops_tasks.settings import state_dir
from mlops_tasks.validation.report import ValidationReport

__all__ = ["SavedValidation", "render_data_docs", "save_validation_report"]

logger = logging.getLogger(__name__)


class SavedValidation(BaseModel):
    """Where a validation report and its Data Docs page were written.

    Example:
        ```python
        saved = SavedValidation(report_path="/s/validation/churn/t/report.json", data_docs_path=None)
        ```
    """

    report_path: str = Field(description="The report as JSON.")
    data_docs_path: str | None = Field(
        None, description="GX Data Docs page of the validation, when GX's result was at hand."
    )


def render_data_docs(report: ValidationReport) -> str | None:
    """The GX Data Docs validation-results page of ``report`` as HTML, or ``None`` without a GX result.

    Args:
        report: A report from :func:`~mlops_tasks.validation.validate_dataframe` (a report read
            back from JSON has no GX result).

    Returns:
        The HTML page, or ``None``.

    Example:
        ```python
        html = render_data_docs(report)
        ```
    """
    result = report.gx_result
    if result is None:
        return None
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    document = ValidationResultsPageRenderer().render(result)
    view = DefaultJinjaPageView()
    return str(view.render(document))  # type: ignore[no-untyped-call]  # GX leaves render() unannotated


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "-", text).strip("-.") or "dataset"


def save_validation_report(
    report: ValidationReport, *, location: str | os.PathLike[str] | None = None
) -> SavedValidation:
    """Write ``report.json`` and the GX Data Docs page ``data-docs.html`` into one folder.

    Args:
        report: The validation report, passed or failed.
        location: Folder to write into (created); default
            ``<state dir>/validation/<dataset>/<UTC time>``. Local folders only.

    Returns:
        The paths written. A Data Docs page that cannot be rendered is logged as a warning and
        left out: the report stands without it.

    Raises:
        ConfigurationError: ``location`` is an ``s3://`` URI or cannot be written.

    Example:
        ```python
        saved = save_validation_report(report)
        print(saved.data_docs_path)   # open it in a browser
        ```
    """
    if location is not None and str(location).startswith("s3://"):
        raise ConfigurationError(
            f"Validation reports are written to a local folder, not {location}; give a folder."
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = Path(location) if location else state_dir() / "validation" / _slug(report.dataset) / stamp
    try:
        folder.mkdir(parents=True, exist_ok=True)
        report_path = folder / "report.json"
        report_path.write_text(json.dumps(report.model_dump(mode="json"), indent=2), encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"Cannot write the validation report into {folder}: {exc}") from exc
    docs_path: Path | None = None
    try:
        html = render_data_docs(report)
    except Exception as exc:  # the report stands without its page; say why it is missing
        logger.warning("GX Data Docs of %s not rendered: %s: %s", report.dataset, type(exc).__name__, exc)
        html = None
    if html is not None:
        docs_path = folder / "data-docs.html"
        docs_path.write_text(html, encoding="utf-8")
    return SavedValidation(report_path=str(report_path), data_docs_path=str(docs_path) if docs_path else None)
