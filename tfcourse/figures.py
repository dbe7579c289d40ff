"""Plotting helpers for the lessons: curves, heatmaps, histograms and bar charts.

Each helper takes plain numbers (lists, NumPy arrays or CPU tensors) keyed by the label
they get in the figure, and returns a :class:`NotebookFigure`: a ``matplotlib.figure.Figure``
built without pyplot that renders itself as a PNG wherever IPython displays it. A notebook
therefore shows it exactly once (as the cell's value, or through
:func:`tfcourse.interactive.explore`), with or without a pyplot backend, and nothing is
left open afterwards.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

# A curve is its y values (plotted against 1, 2, ...) or an (x, y) pair of sequences.
Curve = Sequence[float] | tuple[Sequence[float], Sequence[float]]

PANEL_SIZE = (3.2, 2.7)  # inches per panel
CURVE_SIZE = (6.4, 3.6)
PLAIN_LOG_DECADES = 3  # log axes spanning more decades than this are labelled in powers of ten


class NotebookFigure(Figure):
    """A figure that IPython displays as a PNG image (``_repr_png_``), no pyplot needed."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def panel_grid(n_panels: int, columns: int | None = None) -> tuple[NotebookFigure, list[Axes]]:
    """A figure with ``n_panels`` axes laid out in rows of ``columns`` (default: all in one row)."""
    if n_panels < 1:
        raise ValueError("nothing to plot: pass at least one panel")
    columns = min(columns or n_panels, n_panels)
    rows = math.ceil(n_panels / columns)
    figure = NotebookFigure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[n_panels:]:
        unused.set_visible(False)
    return figure, axes[:n_panels]


def _xy(curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` arrays of a curve given as ``y`` or as ``(x, y)``."""
    if isinstance(curve, tuple) and len(curve) == 2 and np.ndim(curve[0]) == 1:
        x, y = (np.asarray(values, dtype=float) for values in curve)
    else:
        y = np.asarray(curve, dtype=float)
        x = np.arange(1, len(y) + 1, dtype=float)
    if x.shape != y.shape or y.ndim != 1:
        raise ValueError(f"a curve needs matching 1-D x and y, got shapes {x.shape} and {y.shape}")
    return x, y


def exponential_moving_average(values: Sequence[float], smoothing: float) -> np.ndarray:
    """``s_t = smoothing * s_(t-1) + (1 - smoothing) * v_t`` with ``s_1 = v_1``, as TensorBoard smooths."""
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    smoothed = np.empty(len(values))
    running = values[0]
    for t, value in enumerate(values):
        running = smoothing * running + (1 - smoothing) * value
        smoothed[t] = running
    return smoothed


def plot_curves(
    curves: Mapping[str, Curve],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
    smoothing: float = 0.0,
    markers: bool = False,
) -> Figure:
    """One line per labelled curve on a single pair of axes.

    ``smoothing > 0`` draws each curve faintly and its :func:`exponential_moving_average`
    on top (for noisy training losses). ``markers`` marks every point (for short sweeps).
    """
    figure = NotebookFigure(figsize=CURVE_SIZE, layout="constrained")
    ax = figure.subplots()
    for label, curve in curves.items():
        x, y = _xy(curve)
        style = {"marker": "o", "markersize": 4} if markers else {}
        if smoothing > 0:
            (raw,) = ax.plot(x, y, alpha=0.25, linewidth=1)
            ax.plot(x, exponential_moving_average(y, smoothing), color=raw.get_color(), label=label, **style)
        else:
            ax.plot(x, y, label=label, **style)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    for use_log, set_scale, axis in ((log_x, ax.set_xscale, ax.xaxis), (log_y, ax.set_yscale, ax.yaxis)):
        if use_log:
            set_scale("log")
            _label_plainly(axis)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    return figure


def _label_plainly(axis: Axis) -> None:
    """Label a log-scaled axis 1, 2, 5, 10, 20, ... where it spans at most ``PLAIN_LOG_DECADES``.

    Wider ranges keep matplotlib's powers of ten, which stay readable over many decades.
    """
    low, high = axis.get_data_interval()
    if low <= 0 or math.log10(high / low) > PLAIN_LOG_DECADES:
        return
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_heatmaps(
    panels: Mapping[str, np.ndarray],
    *,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    columns: int | None = None,
    cmap: str = "viridis",
) -> Figure:
    """One heatmap per labelled 2-D array, all on one colour scale with one colour bar.

    ``x_labels`` and ``y_labels`` name the columns and rows (e.g. the tokens).
    """
    matrices = {label: np.asarray(matrix, dtype=float) for label, matrix in panels.items()}
    for label, matrix in matrices.items():
        if matrix.ndim != 2:
            raise ValueError(f"panel {label!r} must be a 2-D array, got shape {matrix.shape}")
    low = min(matrix.min() for matrix in matrices.values())
    high = max(matrix.max() for matrix in matrices.values())
    figure, axes = panel_grid(len(matrices), columns)
    for ax, (label, matrix) in zip(axes, matrices.items()):
        image = ax.imshow(matrix, cmap=cmap, vmin=low, vmax=high, aspect="auto")
        _label_ticks(ax, matrix.shape, x_labels, y_labels)
        ax.set(title=label, xlabel=xlabel, ylabel=ylabel)
    figure.colorbar(image, ax=axes, shrink=0.8)
    if title:
        figure.suptitle(title)
    return figure


def _label_ticks(ax: Axes, shape: tuple[int, int], x_labels: Sequence[str] | None, y_labels: Sequence[str] | None):
    """Name every row and column of a heatmap when labels are given."""
    for labels, size, set_ticks in ((x_labels, shape[1], ax.set_xticks), (y_labels, shape[0], ax.set_yticks)):
        if labels is None:
            continue
        if len(labels) != size:
            raise ValueError(f"{len(labels)} tick labels for an axis of {size} cells")
        set_ticks(range(size), labels)


def plot_histograms(
    panels: Mapping[str, Sequence[np.ndarray]],
    *,
    xlabel: str,
    series_labels: Sequence[str] | None = None,
    bins: int = 40,
    title: str | None = None,
) -> Figure:
    """One panel per label, overlaying the histograms of several series (e.g. one per token).

    Every panel shows the same number of series; ``series_labels`` names them in a legend.
    """
    figure, axes = panel_grid(len(panels))
    for ax, (label, series) in zip(axes, panels.items()):
        for index, values in enumerate(series):
            name = series_labels[index] if series_labels else None
            ax.hist(np.asarray(values, dtype=float).ravel(), bins=bins, density=True, histtype="step",
                    linewidth=1.5, label=name)
        ax.set(title=label, xlabel=xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("density")
    if series_labels:
        axes[-1].legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def plot_bars(
    panels: Mapping[str, Sequence[float]],
    labels: Sequence[str],
    *,
    ylabel: str,
    title: str | None = None,
    columns: int | None = None,
) -> Figure:
    """One bar chart per panel over the same named categories (e.g. candidate next tokens)."""
    figure, axes = panel_grid(len(panels), columns)
    for ax, (panel, heights) in zip(axes, panels.items()):
        heights = np.asarray(heights, dtype=float)
        if heights.shape != (len(labels),):
            raise ValueError(f"panel {panel!r} has {heights.size} bars for {len(labels)} labels")
        ax.bar(range(len(labels)), heights)
        ax.set_xticks(range(len(labels)), labels)
        ax.set(title=panel, ylabel=ylabel)
        ax.grid(axis="y", alpha=0.3)
    if title:
        figure.suptitle(title)
    return figure
