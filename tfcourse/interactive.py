"""Interactive figures: sliders in a live notebook, the same figure drawn statically in the book.

A lesson describes a figure once, as a function of a few named values, and hands it to
:func:`explore` with one control per value::

    def draw(temperature: float, head: str) -> matplotlib.figure.Figure: ...

    explore(draw, temperature=(1.0, 0.1, 5.0, 0.1), head=["head 0", "head 1"])

A control is either

* a slider, ``(default, low, high, step)``: an integer slider when all four are ``int``,
  a float slider otherwise; or
* a list of choices, ``[default, other, ...]``: a drop-down whose first entry is the default.

In a Jupyter kernel with ipywidgets, :func:`explore` shows the controls above the figure
and redraws on every change. Where no kernel can redraw (the built book, a kernel without
ipywidgets), it shows ``draw`` at the defaults as an ordinary static figure, so the page
needs no widget JavaScript. The book's Sphinx extension (``book/_ext``) selects the static
form for every notebook it executes by setting ``TFCOURSE_STATIC_FIGURES=1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from numbers import Real
from typing import Any

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

STATIC_FIGURES_ENV = "TFCOURSE_STATIC_FIGURES"

Slider = tuple[Real, Real, Real, Real]
Control = Slider | list


def explore(draw: Callable[..., Figure], **controls: Control) -> None:
    """Show ``draw(**values)`` with one widget per control, or statically at the defaults.

    Args:
        draw: builds and returns a ``matplotlib.figure.Figure`` for keyword values named
            like the controls.
        controls: ``name=(default, low, high, step)`` for a slider or
            ``name=[default, *others]`` for a drop-down (see the module docstring).

    Raises:
        ValueError: when a control is malformed (wrong length, default out of range,
            non-positive step, no choices).
    """
    defaults = control_defaults(controls)
    if not live_widgets_available():
        show_figure(draw(**defaults))
        return
    import ipywidgets
    from IPython.display import display

    widgets = {name: _widget(name, control) for name, control in controls.items()}
    output = ipywidgets.interactive_output(lambda **values: show_figure(draw(**values)), widgets)
    display(ipywidgets.VBox([ipywidgets.HBox(list(widgets.values())), output]))


def control_defaults(controls: Mapping[str, Control]) -> dict[str, Any]:
    """``{name: default}`` for each control, after checking that every control is well formed."""
    return {name: _checked(name, control)[0] for name, control in controls.items()}


def live_widgets_available() -> bool:
    """True inside a Jupyter kernel with ipywidgets installed, unless static figures were asked for."""
    if os.environ.get(STATIC_FIGURES_ENV, "") not in ("", "0"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def show_figure(figure: Figure) -> None:
    """Display ``figure`` once (as the notebook's image output) and release it from pyplot."""
    from IPython.display import display

    display(figure)
    plt.close(figure)


def _checked(name: str, control: Control) -> Control:
    """Validate one control and return it; the first entry is always the default."""
    if isinstance(control, list):
        if not control:
            raise ValueError(f"control {name!r}: a list of choices needs at least one entry (the default first)")
        return control
    if not (isinstance(control, tuple) and len(control) == 4 and all(isinstance(v, Real) for v in control)):
        raise ValueError(
            f"control {name!r}: expected a slider (default, low, high, step) of four numbers "
            f"or a list of choices, got {control!r}"
        )
    default, low, high, step = control
    if step <= 0:
        raise ValueError(f"control {name!r}: step must be positive, got {step}")
    if not low <= default <= high:
        raise ValueError(f"control {name!r}: default {default} lies outside [{low}, {high}]")
    return control


def _widget(name: str, control: Control):
    """The ipywidgets control for one checked control: a drop-down or an int/float slider."""
    import ipywidgets

    if isinstance(control, list):
        return ipywidgets.Dropdown(options=control, value=control[0], description=name)
    default, low, high, step = control
    is_int = all(isinstance(v, int) for v in control)
    slider = ipywidgets.IntSlider if is_int else ipywidgets.FloatSlider
    return slider(value=default, min=low, max=high, step=step, description=name, continuous_update=False)
