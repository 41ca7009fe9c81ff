"""HoloViews plots of a sweep table (:func:`explorer.sweep.results_frame`), saved as HTML
(Bokeh) and PNG (Matplotlib, no browser needed).

* :func:`accuracy_plots` – accuracy against each swept parameter: every row as a dot,
  the mean over trials and the other parameters as a line with ± one standard deviation.
* :func:`heatmap` – mean accuracy over two swept parameters (averaged over trials and
  any further parameters), the cells in grid order.

Converter bits that are None ("ideal") are shown as the category ``ideal``.

Matplotlib (HoloViews' PNG backend, ~0.5 s to import) is loaded by :func:`save_plots`
only: the figures carry Matplotlib options when that backend is loaded, so the dashboard,
which shows them with Bokeh, never pays for it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # the .opts() below use Bokeh option names
import numpy as np
import pandas as pd

from explorer.sweep import atomic_write

IDEAL = "ideal"


@lru_cache(maxsize=1)
def png_problem() -> str:
    """Load HoloViews' Matplotlib backend (it draws the PNG files, no browser needed);
    returns why PNG files cannot be drawn, or '' when they can."""
    try:
        import holoviews.plotting.mpl  # noqa: F401
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        return f"PNG plots skipped: Matplotlib is not installed ({exc})"
    return ""


def __getattr__(name: str) -> Any:
    if name == "PNG_PROBLEM":  # the module constant this function replaced (loads Matplotlib)
        return png_problem()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def axis_labels(frame: pd.DataFrame, name: str) -> tuple[pd.Series, list[str], bool]:
    """Values of column ``name`` for plotting: (series, category order, numeric?).

    A column of numbers is numeric (sorted); anything else, or numbers mixed with
    None/ideal, becomes text categories in increasing order with ``ideal`` last."""
    column = frame[name].astype(object)
    values = list(dict.fromkeys(column.tolist()))
    present = [v for v in values if not _is_missing(v)]
    numeric = (
        all(
            isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_))
            for v in present
        )
        and present
    )
    if numeric and len(present) == len(values):
        order = sorted(present)
        return column.astype(float), [_fmt(v) for v in order], True
    order = sorted(present) if numeric else present
    labels = [_fmt(v) for v in order] + ([IDEAL] if len(present) < len(values) else [])
    return column.map(lambda v: IDEAL if _is_missing(v) else _fmt(v)), labels, False


def _mpl(element: Any, **options: Any) -> Any:
    """Options for the Matplotlib (PNG) rendering, when that backend is loaded."""
    if "matplotlib" not in hv.Store.renderers:
        return element
    return element.opts(backend="matplotlib", **options)


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def accuracy_plots(frame: pd.DataFrame, swept: list[str]) -> hv.Layout:
    """Accuracy (%) against each swept parameter: rows as dots, mean ± std as a line."""
    plots = []
    for name in swept:
        x, order, numeric = axis_labels(frame, name)
        data = pd.DataFrame({name: x, "accuracy": frame["accuracy"].astype(float) * 100})
        stats = data.groupby(name, sort=False)["accuracy"].agg(["mean", "std"]).fillna(0.0)
        if numeric:
            stats = stats.sort_index()
        else:
            stats = stats.reindex([o for o in order if o in stats.index])
        stats = stats.reset_index()
        others = [n for n in swept if n != name]
        over = "trials" + (f" and {', '.join(others)}" if others else "")
        dots = hv.Scatter(data, [name], ["accuracy"], label="evaluations")
        dots = dots.opts(color="#9aa5b1", alpha=0.6, size=5, tools=["hover"], backend="bokeh")
        dots = _mpl(dots, color="#9aa5b1", alpha=0.6, s=12)
        line = hv.Curve(stats, name, "mean", label=f"mean over {over}")
        line = line.opts(color="#1f77b4", line_width=2, backend="bokeh")
        line = _mpl(line, color="#1f77b4", linewidth=2)
        bars = hv.ErrorBars(stats, name, ["mean", "std"]).opts(color="#1f77b4")
        title = f"Accuracy against {name}"
        overlay = hv.Overlay([dots, bars, line]).opts(
            title=title,
            xlabel=name,
            ylabel="accuracy (%)",
            width=420,
            height=320,
            show_legend=True,
            backend="bokeh",
        )
        overlay = _mpl(
            overlay, title=title, xlabel=name, ylabel="accuracy (%)", fig_inches=(4.5, 3.5)
        )
        plots.append(overlay)
    return hv.Layout(plots).cols(2)


def heatmap(
    frame: pd.DataFrame,
    x: str,
    y: str,
    x_values: list[Any] | None = None,
    y_values: list[Any] | None = None,
) -> hv.Overlay:
    """Mean accuracy (%) over grid points (x, y), averaged over trials and other parameters,
    each cell labelled with its value. ``x_values``/``y_values``: the grid's values (axes
    fixed from the start, cells not yet done stay blank); default: those in ``frame``."""
    x_order = _order(x_values) if x_values is not None else None
    y_order = _order(y_values) if y_values is not None else None
    if frame.empty:
        mean = pd.DataFrame({x: [], y: [], "accuracy": []})
    else:
        xs, found_x, _ = axis_labels(frame, x)
        ys, found_y, _ = axis_labels(frame, y)
        x_order = x_order or found_x
        y_order = y_order or found_y
        data = pd.DataFrame(
            {x: xs.map(_fmt), y: ys.map(_fmt), "accuracy": frame["accuracy"].astype(float) * 100}
        )
        mean = data.groupby([x, y], sort=False)["accuracy"].mean().reset_index()
    return _heatmap(mean, x, y, x_order or [], y_order or [])


def _order(values: list[Any]) -> list[str]:
    return [IDEAL if _is_missing(v) else _fmt(v) for v in values]


def _heatmap(
    mean: pd.DataFrame, x: str, y: str, x_order: list[str], y_order: list[str]
) -> hv.Overlay:
    # cells at integer positions with tick labels: HoloViews sorts text categories as text
    # ("16" before "4") when it grids them, so the grid order is kept by the positions
    xi = {label: i for i, label in enumerate(x_order)}
    yi = {label: i for i, label in enumerate(y_order)}
    cells = pd.DataFrame(
        {
            "xi": mean[x].map(xi).astype(float),
            "yi": mean[y].map(yi).astype(float),
            "accuracy": mean["accuracy"].astype(float),
        }
    )
    kdims = [hv.Dimension("xi", label=x), hv.Dimension("yi", label=y)]
    vdims = [hv.Dimension("accuracy", label="accuracy (%)", range=(0, 100))]
    xticks = list(enumerate(x_order))
    yticks = list(enumerate(y_order))
    title = f"Mean accuracy (%) over {x} × {y}"
    plot = hv.HeatMap(cells, kdims, vdims).opts(
        title=title,
        xticks=xticks,
        yticks=yticks,
        xlim=(-0.5, len(x_order) - 0.5),
        ylim=(-0.5, len(y_order) - 0.5),
    )
    plot = plot.opts(
        cmap="viridis", colorbar=True, tools=["hover"], width=520, height=400, backend="bokeh"
    )
    plot = _mpl(
        plot,
        title=title,
        cmap="viridis",
        colorbar=True,
        fig_inches=(5.5, 4.2),
        xticks=xticks,
        yticks=yticks,
        show_values=False,
    )
    text = hv.Labels(
        cells.assign(text=cells["accuracy"].map(lambda a: f"{a:.1f}")), kdims, "text"
    ).opts(text_color="white", text_font_size="9pt")
    return plot * _mpl(text, color="white", size=9)


def save_plots(frame: pd.DataFrame, swept: list[str], folder: Path) -> tuple[dict[str, str], str]:
    """Write ``accuracy.html`` (and ``heatmap.html`` for two or more swept parameters) to
    ``folder``, with PNG copies drawn by Matplotlib; returns ({kind: path}, note). The
    note says why PNG files are missing (Matplotlib not installed), else it is empty."""
    problem = png_problem()  # loaded before the figures are built: they need its options
    figures = {"accuracy": accuracy_plots(frame, swept)}
    if len(swept) >= 2:
        figures["heatmap"] = heatmap(frame, swept[0], swept[1])
    written: dict[str, str] = {}
    for kind, figure in figures.items():
        path = Path(folder) / f"{kind}.html"
        atomic_write(
            path, lambda p, f=figure: hv.save(f, p, backend="bokeh", resources="inline", fmt="html")
        )
        written[f"{kind}_html"] = str(path)
    if problem:
        return written, problem
    for kind, figure in figures.items():
        path = Path(folder) / f"{kind}.png"
        atomic_write(
            path, lambda p, f=figure: hv.save(f, p, backend="matplotlib", fmt="png", dpi=110)
        )
        written[f"{kind}_png"] = str(path)
    return written, ""
