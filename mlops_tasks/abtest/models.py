"""Parameters and results of an A/B test: :class:`AbSpec`, :class:`AbVerdict`.

Variants are named ``A`` (the champion, control) and ``B`` (the challenger, treatment) in
observations, verdicts and the router; the spec says which registered version each one is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_tasks.errors import ConfigurationError

__all__ = [
    "EVENT_ABTEST_CONCLUDED",
    "VARIANTS",
    "AbGuardrails",
    "AbSpec",
    "AbVerdict",
    "EffectPoint",
    "Variant",
    "VariantSummary",
    "Verdict",
    "check_weights",
]

#: The two variant names: ``A`` is the champion (control), ``B`` the challenger.
Variant = Literal["A", "B"]
VARIANTS: tuple[Variant, Variant] = ("A", "B")

#: The Prefect event emitted when an evaluation ends a test (resource ``mlops.endpoint.<name>``).
EVENT_ABTEST_CONCLUDED = "mlops.abtest.concluded"

#: Every verdict :func:`~mlops_tasks.abtest.analyze` can give.
Verdict = Literal["B_better", "A_better", "no_difference", "keep_running", "invalid_sample_ratio"]

#: Metrics derived from ``prediction`` and ``label`` columns (any other name is an outcome column).
DERIVED_METRICS = {"accuracy": True, "abs_error": False, "squared_error": False}


def check_weights(weights: dict[str, int]) -> None:
    """Refuse weights that do not name A and B, do not sum to 100 or leave a variant at 0.

    Raises:
        ConfigurationError: The weights are unusable (pydantic wraps it in a
            ``ValidationError`` when raised while building an :class:`AbSpec`).

    Example:
        ```python
        check_weights({"A": 90, "B": 10})
        ```
    """
    if set(weights) != set(VARIANTS):
        raise ConfigurationError(
            f"A/B weights name {sorted(weights)}; expected exactly 'A' (champion) and 'B' "
            "(challenger), e.g. {'A': 50, 'B': 50}."
        )
    if sum(weights.values()) != 100 or min(weights.values()) <= 0:
        raise ConfigurationError(
            f"A/B weights {weights} must sum to 100 with every variant above 0 (found sum "
            f"{sum(weights.values())}); e.g. {{'A': 50, 'B': 50}} or {{'A': 90, 'B': 10}}."
        )


class AbGuardrails(BaseModel):
    """Limits on the challenger (``B``) against the champion (``A``); a breach ends the test for ``A``.

    The server faults are the bake guard's: 5xx answers and latency; 4xx answers count only
    in excess of the champion's share (a bad caller sends bad rows to both).

    Example:
        ```python
        AbGuardrails(max_5xx_increase=0.01, max_p95_latency_ratio=1.5)
        ```
    """

    model_config = ConfigDict(frozen=True)

    max_5xx_increase: float = Field(0.01, ge=0, le=1, description="Highest 5xx share of B above A's.")
    max_4xx_increase: float = Field(0.05, ge=0, le=1, description="Highest 4xx share of B above A's.")
    max_p95_latency_ratio: float = Field(
        2.0, gt=1, description="Highest p95 latency of B as a multiple of A's."
    )
    min_requests: int = Field(50, ge=1, description="Requests per variant before a guardrail is judged.")


class AbSpec(BaseModel):
    """What an A/B test compares and when it may stop.

    Example:
        ```python
        spec = AbSpec(primary_metric="rated_4plus", min_effect=0.01, weights={"A": 50, "B": 50})
        ```
    """

    model_config = ConfigDict(frozen=True)

    primary_metric: str = Field(
        description="Column that decides: an outcome column (mean of a binary or numeric outcome), or "
        "'accuracy' / 'abs_error' / 'squared_error' computed from 'prediction' and 'label'."
    )
    higher_is_better: bool | None = Field(
        None, description="Direction of the primary metric; default: True, False for the error metrics."
    )
    min_effect: float = Field(
        gt=0, description="Smallest absolute difference of the primary metric that matters."
    )
    equivalence_margin: float | None = Field(
        None, gt=0, description="'no_difference' once the interval lies inside +-margin (default min_effect)."
    )
    mixture_sd: float | None = Field(
        None, gt=0, description="SD of the mSPRT's normal mixture of effects (default min_effect)."
    )
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Chance of ever calling a winner when none exists.")
    weights: dict[str, int] = Field(
        default_factory=lambda: {"A": 50, "B": 50}, description="Traffic percent per variant (sum 100)."
    )
    unit: Literal["subject", "request"] = Field(
        "subject", description="Unit of analysis: subject (sticky assignment) or request."
    )
    min_samples: int = Field(100, ge=2, description="Units with an outcome per variant before any verdict.")
    srm_p: float = Field(0.001, gt=0, lt=1, description="Sample-ratio check: below this p, invalid.")
    look_every: str = Field("1h", description="Spacing of the looks in the effect history (pandas offset).")
    guardrails: AbGuardrails = Field(default_factory=AbGuardrails)
    report_metrics: list[str] = Field(
        default_factory=list,
        description="Other outcome columns reported per variant (mean per unit); only the primary decides.",
    )

    @model_validator(mode="after")
    def _check(self) -> AbSpec:
        check_weights(self.weights)
        return self

    @property
    def better_high(self) -> bool:
        """Whether a higher primary metric is better."""
        if self.higher_is_better is not None:
            return self.higher_is_better
        return DERIVED_METRICS.get(self.primary_metric, True)

    @property
    def margin(self) -> float:
        """The equivalence margin actually used."""
        return self.equivalence_margin if self.equivalence_margin is not None else self.min_effect

    @property
    def tau2(self) -> float:
        """Variance of the mixture of effects."""
        sd = self.mixture_sd if self.mixture_sd is not None else self.min_effect
        return sd * sd


class VariantSummary(BaseModel):
    """What one variant saw: units, outcomes, metric means, server faults."""

    units: int = Field(description="Subjects (or requests) assigned to the variant.")
    with_outcome: int = Field(description="Of those, units whose primary metric is known.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Mean of every metric column.")
    share_5xx: float | None = None
    share_4xx: float | None = None
    p95_latency_ms: float | None = None


class EffectPoint(BaseModel):
    """The effect at one look (for the plot of the effect and its interval over time)."""

    at: str
    samples: int
    effect: float
    low: float
    high: float
    p_value: float


class AbVerdict(BaseModel):
    """The result of :func:`~mlops_tasks.abtest.analyze` (JSON-serialisable).

    Example:
        ```python
        v = analyze(observations, spec)
        print(v.verdict, v.effect, v.interval, v.samples)
        ```
    """

    verdict: Verdict
    reason: str
    primary_metric: str
    effect: float | None = Field(None, description="Mean of B minus mean of A on the primary metric.")
    interval: tuple[float, float] | None = Field(None, description="Always-valid interval of the effect.")
    p_value: float | None = Field(None, description="Always-valid p-value (running minimum over looks).")
    samples: dict[str, int] = Field(default_factory=dict, description="Units with an outcome per variant.")
    variants: dict[str, VariantSummary] = Field(default_factory=dict)
    srm_p: float | None = None
    guardrail_breaches: list[str] = Field(default_factory=list)
    history: list[EffectPoint] = Field(default_factory=list)
    decided_at: str | None = Field(None, description="Look at which the verdict was first reached.")

    @property
    def winner(self) -> Variant | None:
        """``B`` for B_better, ``A`` for A_better, else ``None``."""
        return "B" if self.verdict == "B_better" else "A" if self.verdict == "A_better" else None

    @property
    def concluded(self) -> bool:
        """The test should end (any verdict but keep_running)."""
        return self.verdict != "keep_running" or bool(self.guardrail_breaches)
