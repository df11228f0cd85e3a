"""The evaluation's report: a plot of the effect and its always-valid interval over time, and markdown.

Drawn with Matplotlib's object API on an Agg canvas (no ``pyplot``: no global figure
state, safe in worker threads and without a display).
"""

from __future__ import annotations

import base64
import io

from mlops_tasks.abtest.models import AbVerdict

__all__ = ["effect_plot_png", "verdict_markdown"]


def effect_plot_png(verdict: AbVerdict, margin: float | None = None) -> bytes:
    """PNG of the effect (B - A) and its always-valid interval at every look.

    Example:
        ```python
        Path("effect.png").write_bytes(effect_plot_png(verdict, margin=0.015))
        ```
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    points = verdict.history
    x = list(range(len(points)))
    if points:
        effect = [p.effect for p in points]
        low = [max(p.low, min(effect) - 1.0) for p in points]
        high = [min(p.high, max(effect) + 1.0) for p in points]
        ax.fill_between(x, low, high, alpha=0.25, label="always-valid interval")
        ax.plot(x, effect, label="effect B - A")
        ax.set_xticks([0, len(points) - 1], [points[0].at[:16], points[-1].at[:16]])
    ax.axhline(0.0, color="black", linewidth=0.8)
    if margin:
        for y in (-margin, margin):
            ax.axhline(y, color="grey", linestyle="--", linewidth=0.8)
    ax.set_title(f"{verdict.primary_metric}: {verdict.verdict}")
    ax.set_xlabel("look")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def verdict_markdown(verdict: AbVerdict, title: str, action: str, png: bytes | None = None) -> str:
    """Markdown of a verdict: the decision, the interval, per-variant figures, the plot.

    Example:
        ```python
        text = verdict_markdown(verdict, "A/B test 1a2b on churn", "none", effect_plot_png(verdict))
        ```
    """
    interval = f"[{verdict.interval[0]:.4g}, {verdict.interval[1]:.4g}]" if verdict.interval else "n/a"
    effect = f"{verdict.effect:.4g}" if verdict.effect is not None else "n/a"
    lines = [
        f"# {title}",
        "",
        f"**Verdict: `{verdict.verdict}`**, action: `{action}`. {verdict.reason}",
        "",
        f"Effect on `{verdict.primary_metric}` (B - A): {effect}, "
        f"always-valid interval {interval}, p = {verdict.p_value}; sample-ratio p = {verdict.srm_p}.",
        "",
        "| variant | units | with outcome | 5xx share | p95 ms | metrics |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, summary in verdict.variants.items():
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in summary.metrics.items())
        lines.append(
            f"| {name} | {summary.units} | {summary.with_outcome} | {summary.share_5xx} | "
            f"{summary.p95_latency_ms} | {metrics} |"
        )
    if verdict.guardrail_breaches:
        lines += ["", "Guardrail breaches: " + "; ".join(verdict.guardrail_breaches)]
    if png:
        lines += ["", f"![effect and interval](data:image/png;base64,{base64.b64encode(png).decode()})"]
    return "\n".join(lines) + "\n"
