"""Plotting helpers of the lessons: what they draw, how they display, how they fail."""

import numpy as np
import pytest
import torch

from tfcourse.figures import (
    NotebookFigure,
    exponential_moving_average,
    panel_grid,
    plot_bars,
    plot_curves,
    plot_heatmaps,
    plot_histograms,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_figures_render_themselves_as_png_without_pyplot():
    figure = plot_curves({"loss": [3.0, 2.0, 1.5]}, xlabel="step", ylabel="loss")
    assert isinstance(figure, NotebookFigure)
    assert figure._repr_png_().startswith(PNG_SIGNATURE)


def test_plot_curves_accepts_y_values_or_xy_pairs_and_tensors():
    figure = plot_curves({"a": torch.tensor([1.0, 2.0]), "b": ([10, 20, 30], np.ones(3))},
                         xlabel="x", ylabel="y", log_x=True)
    lines = figure.axes[0].get_lines()
    assert [list(line.get_xdata()) for line in lines] == [[1, 2], [10, 20, 30]]
    assert figure.axes[0].get_xscale() == "log"


def test_log_axes_are_labelled_plainly_over_a_few_decades_only():
    narrow = plot_curves({"c": ([10, 100, 1000], [1, 2, 3])}, xlabel="x", ylabel="y", log_x=True)
    wide = plot_curves({"c": ([1e2, 1e6, 1e10], [1, 2, 3])}, xlabel="x", ylabel="y", log_x=True)
    formatter = narrow.axes[0].xaxis.get_major_formatter()
    assert formatter(20, 0) == "20"
    assert wide.axes[0].xaxis.get_major_formatter()(1e6, 0) != "1e+06"


def test_plot_curves_with_smoothing_draws_the_raw_and_the_smoothed_curve():
    figure = plot_curves({"loss": [4.0, 1.0, 3.0, 1.0]}, xlabel="step", ylabel="loss", smoothing=0.5)
    raw, smoothed = figure.axes[0].get_lines()
    assert list(smoothed.get_ydata()) == pytest.approx([4.0, 2.5, 2.75, 1.875])
    assert raw.get_color() == smoothed.get_color()


def test_plot_curves_rejects_mismatched_x_and_y():
    with pytest.raises(ValueError, match="matching"):
        plot_curves({"bad": ([1, 2, 3], [1, 2])}, xlabel="x", ylabel="y")


def test_exponential_moving_average_checks_its_factor():
    assert exponential_moving_average([2.0, 4.0], 0.0) == pytest.approx([2.0, 4.0])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        exponential_moving_average([1.0], 1.0)


def test_plot_heatmaps_share_one_colour_scale():
    figure = plot_heatmaps({"low": np.zeros((2, 3)), "high": np.full((2, 3), 5.0)},
                           x_labels=list("abc"), y_labels=["p", "q"])
    images = [ax.get_images()[0] for ax in figure.axes if ax.get_images()]
    assert [image.get_clim() for image in images] == [(0.0, 5.0), (0.0, 5.0)]
    assert [label.get_text() for label in figure.axes[0].get_xticklabels()] == list("abc")


@pytest.mark.parametrize(
    ("panels", "options", "message"),
    [
        ({"flat": np.zeros(4)}, {}, "2-D"),
        ({"m": np.zeros((2, 3))}, {"x_labels": ["a", "b"]}, "2 tick labels for an axis of 3"),
    ],
)
def test_plot_heatmaps_explain_bad_input(panels, options, message):
    with pytest.raises(ValueError, match=message):
        plot_heatmaps(panels, **options)


def test_plot_histograms_draw_one_series_per_row_in_each_panel():
    figure = plot_histograms({"input": np.random.randn(3, 100), "output": np.random.randn(3, 100)},
                             xlabel="value", series_labels=["a", "b", "c"])
    assert [len(ax.patches) for ax in figure.axes] == [3, 3]


def test_plot_bars_checks_one_bar_per_label():
    figure = plot_bars({"p": [0.5, 0.3, 0.2]}, ["x", "y", "z"], ylabel="probability")
    assert [bar.get_height() for bar in figure.axes[0].patches] == pytest.approx([0.5, 0.3, 0.2])
    with pytest.raises(ValueError, match="2 bars for 3 labels"):
        plot_bars({"p": [0.5, 0.5]}, ["x", "y", "z"], ylabel="probability")


def test_panel_grid_hides_the_unused_cells():
    figure, axes = panel_grid(3, columns=2)
    assert len(axes) == 3
    assert [ax.get_visible() for ax in figure.axes] == [True, True, True, False]
    with pytest.raises(ValueError, match="at least one panel"):
        panel_grid(0)
