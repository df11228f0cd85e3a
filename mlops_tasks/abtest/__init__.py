"""A/B tests on live traffic: the always-valid analysis, outcomes join and test control.

The stable entry point is :func:`analyze` (``observations, spec -> AbVerdict``), a plain
function with no Prefect, router or MLflow inside.

Example:
    ```python
    from mlops_tasks.abtest import AbSpec, analyze
    verdict = analyze(observations, AbSpec(primary_metric="rated_4plus", min_effect=0.01))
    ```
"""

from mlops_tasks.abtest.analysis import analyze
from mlops_tasks.abtest.models import AbGuardrails, AbSpec, AbVerdict, EffectPoint, VariantSummary, Verdict

__all__ = ["AbGuardrails", "AbSpec", "AbVerdict", "EffectPoint", "VariantSummary", "Verdict", "analyze"]
