"""``tfcourse.interactive.explore``: control checking, the static figure, live widgets in a kernel."""

import importlib.util

import matplotlib
import pytest
from matplotlib.figure import Figure

from tfcourse import interactive
from tfcourse.interactive import STATIC_FIGURES_ENV, control_defaults, explore, live_widgets_available

matplotlib.use("Agg")


def test_defaults_are_the_first_values():
    controls = {"temperature": (1.5, 0.1, 5.0, 0.1), "n_heads": (4, 1, 8, 1), "layer": ["cross", "self"]}
    assert control_defaults(controls) == {"temperature": 1.5, "n_heads": 4, "layer": "cross"}


@pytest.mark.parametrize(
    ("control", "message"),
    [
        ((0.1, 5.0, 0.1), "expected a slider"),
        ("fast", "expected a slider"),
        ((9.0, 0.1, 5.0, 0.1), "outside"),
        ((1.0, 0.0, 2.0, 0.0), "step must be positive"),
        ([], "at least one entry"),
    ],
)
def test_malformed_controls_are_named_in_the_error(control, message):
    with pytest.raises(ValueError, match=f"control 'temperature'.*{message}"):
        control_defaults({"temperature": control})


def test_outside_a_kernel_the_figure_is_drawn_once_at_the_defaults(monkeypatch):
    shown, calls = [], []

    def draw(temperature: float, layer: str) -> Figure:
        calls.append((temperature, layer))
        return Figure()

    monkeypatch.setattr(interactive, "show_figure", shown.append)
    explore(draw, temperature=(2.0, 0.1, 5.0, 0.1), layer=["cross", "self"])
    assert calls == [(2.0, "cross")]
    assert len(shown) == 1 and isinstance(shown[0], Figure)


def test_the_environment_variable_turns_widgets_off(monkeypatch):
    monkeypatch.setenv(STATIC_FIGURES_ENV, "1")
    assert not live_widgets_available()


NOTEBOOK_CODE = """
import matplotlib.pyplot as plt
from tfcourse.interactive import explore

def draw(scale):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, scale])
    return fig

explore(draw, scale=(1.0, 0.5, 2.0, 0.5))
"""


def run_in_kernel(monkeypatch, static: bool) -> list[dict]:
    """Execute ``NOTEBOOK_CODE`` in a fresh kernel; return the cell's outputs."""
    import nbformat
    from nbclient import NotebookClient

    if static:
        monkeypatch.setenv(STATIC_FIGURES_ENV, "1")
    else:
        monkeypatch.delenv(STATIC_FIGURES_ENV, raising=False)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_CODE)])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    return notebook.cells[0].outputs


@pytest.mark.skipif(
    importlib.util.find_spec("nbclient") is None or importlib.util.find_spec("ipywidgets") is None,
    reason="needs nbclient and ipywidgets: bash scripts/setup.sh dev",
)
@pytest.mark.parametrize(
    ("static", "expected_mime"), [(False, "application/vnd.jupyter.widget-view+json"), (True, "image/png")]
)
def test_a_kernel_shows_widgets_unless_static_figures_are_asked_for(monkeypatch, static, expected_mime):
    outputs = run_in_kernel(monkeypatch, static)
    mimes = [mime for output in outputs for mime in output.get("data", {})]
    assert expected_mime in mimes, f"outputs: {outputs}"
    assert mimes.count("image/png") == int(static), "the static figure is shown exactly once"
