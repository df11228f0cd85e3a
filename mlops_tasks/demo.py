"""A realistic demo problem: customer churn, with a country segment and a drift knob.

``make_churn_data`` draws a tabular classification problem: numeric and
categorical features, a segment column (``country``), a few missing values and
a binary target ``churned`` whose probability depends on the features through a
fixed logistic model. ``drift`` in [0, 1] moves the feature distributions
(covariate drift: higher charges, shorter tenure, more support calls, a
different country and plan mix) and, past 0.5, part of the relationship between
features and churn (concept drift), so drifted batches both look different and
score worse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_tasks.errors import ConfigurationError

__all__ = [
    "CATEGORICAL_FEATURES",
    "NUMERIC_FEATURES",
    "SEGMENT",
    "TARGET",
    "make_churn_data",
]

TARGET = "churned"
SEGMENT = "country"
NUMERIC_FEATURES = [
    "age",
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "data_usage_gb",
    "num_products",
]
CATEGORICAL_FEATURES = ["plan", "contract", "payment_method", SEGMENT]

_COUNTRIES = ["US", "DE", "IN", "BR", "FR"]
_COUNTRY_P = np.array([0.35, 0.2, 0.2, 0.15, 0.1])
_COUNTRY_P_DRIFTED = np.array([0.15, 0.1, 0.35, 0.3, 0.1])
_PLANS = ["basic", "standard", "premium"]
_CONTRACTS = ["month-to-month", "one-year", "two-year"]
_PAYMENTS = ["card", "bank_transfer", "e-check", "paypal"]


def make_churn_data(rows: int = 5000, *, seed: int = 7, drift: float = 0.0) -> pd.DataFrame:
    """Draw a churn dataset; the same ``rows``, ``seed`` and ``drift`` give the same frame.

    Args:
        rows: Number of customers.
        seed: Random seed.
        drift: 0 for the reference distribution, up to 1 for strongly drifted data.

    Returns:
        A frame with the columns in ``NUMERIC_FEATURES``, ``CATEGORICAL_FEATURES``
        and the target ``churned`` (0/1).

    Raises:
        ConfigurationError: ``rows`` < 1 or ``drift`` outside [0, 1].

    Example:
        ```python
        from mlops_tasks.demo import make_churn_data
        reference = make_churn_data(1000, seed=1)
        drifted = make_churn_data(1000, seed=2, drift=0.8)
        assert drifted["monthly_charges"].mean() > reference["monthly_charges"].mean()
        ```
    """
    if rows < 1:
        raise ConfigurationError(f"rows must be at least 1, got {rows}.")
    if not 0.0 <= drift <= 1.0:
        raise ConfigurationError(f"drift must be within [0, 1], got {drift}.")
    rng = np.random.default_rng(seed)
    country_p = (1 - drift) * _COUNTRY_P + drift * _COUNTRY_P_DRIFTED
    country = rng.choice(_COUNTRIES, size=rows, p=country_p / country_p.sum())
    plan_p = np.array([0.5 - 0.2 * drift, 0.35, 0.15 + 0.2 * drift])
    plan = rng.choice(_PLANS, size=rows, p=plan_p)
    contract_p = [0.55 + 0.2 * drift, 0.25 - 0.1 * drift, 0.2 - 0.1 * drift]
    contract = rng.choice(_CONTRACTS, size=rows, p=contract_p)
    payment = rng.choice(_PAYMENTS, size=rows, p=[0.4, 0.25, 0.2, 0.15])

    age = np.clip(rng.normal(42 - 6 * drift, 13, rows), 18, 85).round().astype("int64")
    tenure = np.clip(rng.gamma(2.0, 14.0 * (1 - 0.5 * drift), rows), 0, 72).round().astype("int64")
    plan_price = pd.Series(plan).map({"basic": 35.0, "standard": 65.0, "premium": 95.0}).to_numpy()
    monthly = np.round(plan_price + rng.normal(30 * drift, 8, rows), 2)
    support_calls = rng.poisson(1.2 + 2.5 * drift, rows).astype("int64")
    usage = np.round(rng.lognormal(2.3 + 0.4 * drift, 0.6, rows), 3)
    products = np.clip(rng.poisson(1.5, rows) + 1, 1, 6).astype("int64")

    contract_effect = (
        pd.Series(contract).map({"month-to-month": 1.0, "one-year": -0.4, "two-year": -1.3}).to_numpy()
    )
    country_effect = (
        pd.Series(country).map({"US": 0.0, "DE": -0.3, "IN": 0.35, "BR": 0.25, "FR": -0.1}).to_numpy()
    )
    concept = max(0.0, drift - 0.5) * 2  # 0 until drift 0.5, then up to 1
    logit = (
        -0.9
        + contract_effect
        + country_effect
        - 0.045 * tenure * (1 - 0.7 * concept)
        + 0.022 * (monthly - 65)
        + 0.42 * support_calls * (1 - 0.8 * concept)
        - 0.25 * (products - 1)
        + 0.9 * concept * (payment == "paypal")
        - 0.01 * (age - 42)
    )
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")

    frame = pd.DataFrame(
        {
            "age": age,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "support_calls": support_calls,
            "data_usage_gb": usage,
            "num_products": products,
            "plan": plan,
            "contract": contract,
            "payment_method": payment,
            SEGMENT: country,
            TARGET: churned,
        }
    )
    # About 1 % of usage readings are missing, as meters fail in real data.
    missing = rng.random(rows) < 0.01
    frame.loc[missing, "data_usage_gb"] = np.nan
    return frame
