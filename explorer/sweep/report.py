"""The plots ``explorer sweep`` writes next to its table, drawn by Matplotlib: PNG files and
self-contained HTML pages (the figure as inline SVG and the plotted numbers as a table).

* :func:`accuracy_against` – accuracy against one swept parameter: every row, and the mean
  and standard deviation over trials and the other parameters per value.
* :func:`heatmap_cells` – mean accuracy over two swept parameters, the cells in grid order.
* :func:`accuracy_energy_points` – mean accuracy against energy per image per grid point,
  the Pareto front marked (:mod:`explorer.cost`).

Both are plain pandas, shared with the dashboard's HoloViews plots
(:mod:`explorer.ui.sweep_plots`). Converter bits that are None ("ideal") are shown as the
category ``ideal``. Matplotlib is imported by :func:`save_plots` only, and only its
object-oriented API (no pyplot, no global settings changed); Panel, Bokeh and HoloViews
are never imported here, so the command line does not load them.
"""

from __future__ import annotations

import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explorer.sweep.store import atomic_write

IDEAL = "ideal"
DOT_COLOR = "#9aa5b1"
LINE_COLOR = "#1f77b4"
PNG_DPI = 110
MAX_VALUE_TICKS = 12
"""A numeric axis with at most this many swept values gets a tick at each value."""
LIGHT_ABOVE = 65.0
"""Heatmap cells above this accuracy (%) are light in viridis: their labels are black."""


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def _order(values: list[Any]) -> list[str]:
    return [IDEAL if _is_missing(v) else _fmt(v) for v in values]


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


def accuracy_against(
    frame: pd.DataFrame, name: str
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], bool]:
    """Accuracy (%) against swept parameter ``name``: ``(rows, stats, order, numeric)``.

    ``rows``: every row's value and ``accuracy``; ``stats``: per value, in axis order,
    the ``mean``, ``std`` (0 for a single row) and ``count`` over trials and the other
    swept parameters; ``order`` and ``numeric`` as :func:`axis_labels` gives them."""
    x, order, numeric = axis_labels(frame, name)
    rows = pd.DataFrame({name: x, "accuracy": frame["accuracy"].astype(float) * 100})
    stats = rows.groupby(name, sort=False)["accuracy"].agg(["mean", "std", "count"])
    stats["std"] = stats["std"].fillna(0.0)
    in_order = stats.sort_index() if numeric else stats.reindex(
        [o for o in order if o in stats.index])
    return rows, in_order.reset_index(), order, bool(numeric)


def heatmap_cells(
    frame: pd.DataFrame,
    x: str,
    y: str,
    x_values: list[Any] | None = None,
    y_values: list[Any] | None = None,
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Mean accuracy (%) over grid points (x, y), averaged over trials and the other
    parameters: ``(cells, x_order, y_order)``; ``cells`` has the integer positions ``xi``,
    ``yi`` in the orders (kept as positions: plotting libraries sort text categories as
    text, "16" before "4") and ``accuracy``. ``x_values``/``y_values``: the grid's values
    (axes fixed from the start, points not yet done absent); default: those in ``frame``."""
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
    x_order, y_order = x_order or [], y_order or []
    xi = {label: i for i, label in enumerate(x_order)}
    yi = {label: i for i, label in enumerate(y_order)}
    cells = pd.DataFrame(
        {
            "xi": mean[x].map(xi).astype(float),
            "yi": mean[y].map(yi).astype(float),
            "accuracy": mean["accuracy"].astype(float),
        }
    )
    return cells, x_order, y_order


ENERGY = "energy_pj_per_image"


def accuracy_energy_points(frame: pd.DataFrame, swept: list[str]) -> pd.DataFrame:
    """Per grid point: mean accuracy (%) over its trials, energy per image (pJ), the swept
    values, and ``pareto`` – True where no other point is at least as accurate and at
    most as costly, and strictly better in one of them (the accuracy–energy front).
    Empty when the table has no energy column (a sweep written before the cost model)."""
    if frame.empty or ENERGY not in frame or frame[ENERGY].isna().all():
        return pd.DataFrame(columns=["point", *swept, "accuracy", ENERGY, "pareto"])
    data = frame.dropna(subset=[ENERGY])
    first = data.groupby("point", sort=False).first()
    points = pd.DataFrame({
        "point": first.index,
        **{name: [IDEAL if _is_missing(v) else v for v in first[name]] for name in swept},
        "accuracy": data.groupby("point", sort=False)["accuracy"].mean().astype(float).to_numpy()
        * 100,
        ENERGY: first[ENERGY].astype(float).to_numpy(),
    })
    acc, energy = points["accuracy"].to_numpy(), points[ENERGY].to_numpy()
    dominated = ((acc[None, :] >= acc[:, None]) & (energy[None, :] <= energy[:, None])
                 & ((acc[None, :] > acc[:, None]) | (energy[None, :] < energy[:, None])))
    points["pareto"] = ~dominated.any(axis=1)
    return points.sort_values(ENERGY, kind="stable").reset_index(drop=True)


# -- Matplotlib figures -----------------------------------------------------------------------
def png_problem() -> str:
    """Why the plot files cannot be drawn ('' when Matplotlib is importable)."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        return f"plots skipped: Matplotlib is not installed ({exc})"
    return ""


def accuracy_figure(frame: pd.DataFrame, swept: list[str]) -> Any:
    """A Matplotlib figure: accuracy (%) against each swept parameter, every row as a dot,
    the mean ± one standard deviation as a line (two panels per row)."""
    from matplotlib.figure import Figure

    ncols = min(2, len(swept))
    nrows = math.ceil(len(swept) / ncols)
    fig = Figure(figsize=(4.5 * ncols, 3.5 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, swept, strict=False):
        rows, stats, order, numeric = accuracy_against(frame, name)
        if numeric:
            dots_x, line_x = rows[name].to_numpy(float), stats[name].to_numpy(float)
            if len(line_x) <= MAX_VALUE_TICKS:  # a tick at each swept value, not at 4.25
                ax.set_xticks(line_x, [_fmt(v) for v in stats[name]])
        else:
            position = {label: i for i, label in enumerate(order)}
            dots_x = rows[name].map(position).to_numpy(float)
            line_x = stats[name].map(position).to_numpy(float)
            ax.set_xticks(range(len(order)), order)
        others = [n for n in swept if n != name]
        over = "trials" + (f" and {', '.join(others)}" if others else "")
        ax.scatter(dots_x, rows["accuracy"], s=12, color=DOT_COLOR, alpha=0.6,
                   label="evaluations")
        ax.errorbar(line_x, stats["mean"], yerr=stats["std"], color=LINE_COLOR, linewidth=2,
                    capsize=3, label=f"mean over {over}")
        ax.set(title=f"Accuracy against {name}", xlabel=name, ylabel="accuracy (%)")
        ax.legend(fontsize="small")
    for ax in axes[len(swept):]:
        ax.set_visible(False)
    return fig


def energy_figure(frame: pd.DataFrame, swept: list[str]) -> Any:
    """A Matplotlib figure: mean accuracy (%) of every grid point against its energy per
    image (pJ, log scale), the Pareto front (most accurate for its energy) marked and
    joined."""
    from matplotlib.figure import Figure

    points = accuracy_energy_points(frame, swept)
    fig = Figure(figsize=(6.0, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.scatter(points[ENERGY], points["accuracy"], s=18, color=DOT_COLOR, label="grid points")
    front = points[points["pareto"]]
    ax.plot(front[ENERGY], front["accuracy"], "o-", color=LINE_COLOR, linewidth=2,
            markersize=6, label="Pareto front")
    lines = []
    for i, row in enumerate(front.itertuples(index=False), start=1):
        ax.annotate(str(i), (getattr(row, ENERGY), row.accuracy), fontsize=8,
                    textcoords="offset points", xytext=(3, -11), color=LINE_COLOR)
        lines.append(f"{i}: " + ", ".join(f"{name}={_fmt(getattr(row, name))}"
                                          for name in swept))
    if lines:
        ax.text(0.98, 0.02, "\n".join(lines[:MAX_VALUE_TICKS]), transform=ax.transAxes,
                fontsize=7, ha="right", va="bottom", color=LINE_COLOR,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    if len(points) and (points[ENERGY] > 0).all():
        ax.set_xscale("log")
    ax.set(title="Accuracy against energy per image", xlabel="energy per image (pJ)",
           ylabel="accuracy (%)")
    ax.legend(fontsize="small")
    return fig


def _energy_table(frame: pd.DataFrame, swept: list[str]) -> list[tuple[str, pd.DataFrame]]:
    points = accuracy_energy_points(frame, swept).rename(columns={
        "accuracy": "mean accuracy (%)", ENERGY: "energy per image (pJ)",
        "pareto": "on the Pareto front"})
    return [("Grid points by energy per image", points)]


def heatmap_figure(frame: pd.DataFrame, x: str, y: str) -> Any:
    """A Matplotlib figure: mean accuracy (%) over swept parameters ``x`` × ``y`` (trials
    and further parameters averaged), each cell labelled with its value."""
    from matplotlib.figure import Figure

    cells, x_order, y_order = heatmap_cells(frame, x, y)
    grid = np.full((len(y_order), len(x_order)), np.nan)
    known = cells.dropna(subset=["xi", "yi"])
    grid[known["yi"].astype(int), known["xi"].astype(int)] = known["accuracy"]
    fig = Figure(figsize=(5.5, 4.2), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, origin="lower", aspect="auto")
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    for (row, col), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=9,
                    color="black" if value > LIGHT_ABOVE else "white")
    ax.set_xticks(range(len(x_order)), x_order)
    ax.set_yticks(range(len(y_order)), y_order)
    ax.set(title=f"Mean accuracy (%) over {x} × {y}", xlabel=x, ylabel=y)
    return fig


# -- files ------------------------------------------------------------------------------------
def _svg(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue().decode("utf-8")
    return text[text.index("<svg"):]  # inline: without the XML declaration and doctype


def _page(title: str, fig: Any, tables: list[tuple[str, pd.DataFrame]]) -> str:
    sections = "\n".join(
        f"<h2>{html.escape(caption)}</h2>\n"
        + table.to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="",
                        border=0, classes="numbers")
        for caption, table in tables
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
svg {{ max-width: 100%; height: auto; }}
table.numbers {{ border-collapse: collapse; font-size: 0.9em; }}
table.numbers th, table.numbers td {{ padding: 0.2em 0.8em; text-align: right; }}
table.numbers tr:nth-child(even) {{ background: #f3f4f6; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
{_svg(fig)}
{sections}
</body>
</html>
"""


def _accuracy_tables(frame: pd.DataFrame, swept: list[str]) -> list[tuple[str, pd.DataFrame]]:
    tables = []
    for name in swept:
        stats = accuracy_against(frame, name)[1]
        stats = stats.rename(columns={"mean": "mean accuracy (%)", "std": "std (%)",
                                      "count": "evaluations"})
        tables.append((f"Accuracy against {name}", stats))
    return tables


def _heatmap_table(frame: pd.DataFrame, x: str, y: str) -> list[tuple[str, pd.DataFrame]]:
    cells, x_order, y_order = heatmap_cells(frame, x, y)
    known = cells.dropna(subset=["xi", "yi"])
    table = pd.DataFrame(np.nan, index=y_order, columns=x_order)
    for xi, yi, accuracy in known[["xi", "yi", "accuracy"]].itertuples(index=False):
        table.iloc[int(yi), int(xi)] = accuracy
    table = table.rename_axis(f"{y} \\ {x}").reset_index()
    return [(f"Mean accuracy (%): rows {y}, columns {x}", table)]


def save_plots(frame: pd.DataFrame, swept: list[str], folder: Path) -> tuple[dict[str, str], str]:
    """Write ``accuracy.png`` and ``accuracy.html``, ``energy.png``/``.html`` (accuracy
    against energy per image, Pareto front marked; when the table has energies) and
    ``heatmap.png``/``.html`` for two or more swept parameters (the first two) to
    ``folder``; returns ({kind: path}, note). The HTML pages open offline (the figure
    inline as SVG, then the plotted numbers). The note says why nothing was drawn
    (Matplotlib not installed), else it is empty."""
    problem = png_problem()
    if problem:
        return {}, problem
    pages = {"accuracy": ("Accuracy against the swept parameters", accuracy_figure(frame, swept),
                          _accuracy_tables(frame, swept))}
    if not accuracy_energy_points(frame, swept).empty:
        pages["energy"] = ("Accuracy against energy per image", energy_figure(frame, swept),
                           _energy_table(frame, swept))
    if len(swept) >= 2:
        x, y = swept[0], swept[1]
        pages["heatmap"] = (f"Mean accuracy over {x} × {y}", heatmap_figure(frame, x, y),
                            _heatmap_table(frame, x, y))
    written: dict[str, str] = {}
    for kind, (title, fig, tables) in pages.items():
        page = _page(title, fig, tables)
        path = Path(folder) / f"{kind}.html"
        atomic_write(path, lambda p, text=page: p.write_text(text, encoding="utf-8"))
        written[f"{kind}_html"] = str(path)
    for kind, (_title, fig, _tables) in pages.items():
        path = Path(folder) / f"{kind}.png"
        atomic_write(path, lambda p, f=fig: f.savefig(p, format="png", dpi=PNG_DPI))
        written[f"{kind}_png"] = str(path)
    return written, ""


__all__ = ["ENERGY", "IDEAL", "accuracy_against", "accuracy_energy_points", "accuracy_figure",
           "axis_labels", "energy_figure", "heatmap_cells", "heatmap_figure", "png_problem",
           "save_plots"]
