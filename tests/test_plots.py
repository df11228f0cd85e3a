"""Evaluation plots: matplotlib's object API only (no pyplot), one PNG per figure, threads at once."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pandas as pd

from mlops_tasks.plots import classification_figures, evaluation_figures, save_figures


def test_regression_figures_with_champion_and_slices(tmp_path):
    from sklearn.linear_model import LinearRegression, Ridge

    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = 3 * x["a"] - x["b"] + rng.normal(scale=0.3, size=300)
    candidate, champion = LinearRegression().fit(x, y), Ridge(alpha=50).fit(x, y)
    figures = evaluation_figures(
        "regression",
        candidate,
        x,
        y,
        champion_model=champion,
        champion_label="champion v2",
        slice_metrics={"region=N": {"r2": 0.9}, "region=S": {"r2": 0.7}},
        slice_rows={"region=N": 150, "region=S": 150},
        slice_thresholds={"r2": {"slice min 0.8": 0.8}},
    )
    assert set(figures) == {"predicted-vs-actual.png", "residuals.png", "slices-r2.png"}
    legend = [t.get_text() for t in figures["predicted-vs-actual.png"].axes[0].get_legend().get_texts()]
    assert legend[:2] == ["candidate", "champion v2"]
    slice_ax = figures["slices-r2.png"].axes[0]
    assert [line.get_ydata()[0] for line in slice_ax.get_lines()] == [0.8]  # the gate's threshold
    paths = save_figures(figures, tmp_path / "plots")
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    assert "matplotlib.pyplot" not in sys.modules


def test_multiclass_and_no_probability_models_get_the_confusion_matrix_only():
    y = np.array(["a", "b", "c"] * 20)
    assert set(classification_figures(y, None, classes=["a", "b", "c"], pred=y)) == {"confusion-matrix.png"}
    proba = np.tile([0.2, 0.3, 0.5], (60, 1))
    assert set(classification_figures(y, proba, classes=["a", "b", "c"])) == {"confusion-matrix.png"}


def test_figures_drawn_in_threads_at_once(tmp_path):
    rng = np.random.default_rng(2)
    errors: list[BaseException] = []

    def draw(i: int) -> None:
        try:
            y = rng.integers(0, 2, 200)
            proba = np.column_stack([1 - rng.random(200), rng.random(200)])
            save_figures(classification_figures(y, proba, classes=[0, 1]), tmp_path / str(i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(len(list((tmp_path / str(i)).glob("*.png"))) == 4 for i in range(2))
