"""Plotly figures for the dashboard. Pure functions of data: no Streamlit here, so they test alone.

The Timeline tab's chart is drawn with square scatter markers rather than ``go.Heatmap`` because
Streamlit returns no selection for heatmap traces (streamlit issues 8760/8933); markers give the
same picture and a click on one reports its time. The Search tab's strip, redrawn on every query,
is a heatmap (one image per row: about 80 ms less of the browser's time per query than 600 markers
on 2 cores); its hover and click are read by its own component (``ui/strip_pointer.js``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from clip_search.timecode import fmt_time
from ui.text import plain

GL_POINTS = 3_000  # beyond this, WebGL markers keep drawing, zoom and hover fluid (a 2-hour film is 7 200)


@dataclass
class TimelineRow:
    """One row of the timeline: a label (query or engine) and a value per frame time."""

    label: str
    times: np.ndarray
    values: np.ndarray
    frames: np.ndarray | None = None  # the strip's: each point's frame index (None: every frame, in order)


def timeline_figure(
    rows: list[TimelineRow],
    value_name: str = "cosine",
    duration: float | None = None,
    intervals: list[tuple[float, float]] | None = None,
    shared_scale: bool = False,
    cursor: float | None = None,
    shots: np.ndarray | None = None,
    bands: list[tuple[int, float, float]] | None = None,
) -> go.Figure:
    """x = film time, one row per query/engine/film, colour = score, with a colour bar.

    ``shared_scale``: one colour scale for all rows (raw values); otherwise each row is coloured
    from its own minimum to its own maximum (rows of different engines or queries have different
    score ranges). ``intervals`` shades ground-truth stretches (evaluation view); ``cursor`` draws
    a line at a picked time; ``shots`` draws a thin tick at each cut; ``bands`` marks (row, start,
    end) moments over their rows.

    Film time is a date axis from midnight, so Plotly picks time labels that suit the zoom (hours,
    minutes, seconds); :func:`seconds_of` turns a clicked point's x back into seconds."""
    fig = go.Figure()
    n_points = sum(len(r.times) for r in rows)
    trace = go.Scattergl if n_points > GL_POINTS else go.Scatter
    longest = max((len(r.times) for r in rows), default=1)
    size = float(np.clip(1400 / max(longest, 1), 3, 22))
    every = [float(v) for r in rows for v in np.asarray(r.values, float)]
    g_lo, g_hi = (min(every), max(every)) if every else (0.0, 1.0)
    labels = [plain(label) for label in row_labels([r.label for r in rows], 28)]
    for n, r in enumerate(rows):
        vals = np.asarray(r.values, float)
        norm = _scaled(vals, (g_lo, g_hi) if shared_scale else None)
        bar = None
        if n == 0:
            if shared_scale:
                ticks = {"tickvals": [0, 1], "ticktext": [f"{g_lo:.3f}", f"{g_hi:.3f}"]}
            else:
                ticks = {"tickvals": [0, 1], "ticktext": ["row min", "row max"]}
            bar = {"title": {"text": value_name, "side": "right"}, "thickness": 10, "len": 0.9, **ticks}
        fig.add_trace(
            trace(
                x=_clock(np.asarray(r.times, float)),
                y=[labels[n]] * len(vals),
                mode="markers",
                name=plain(r.label),
                marker={
                    "symbol": "square",
                    "size": size,
                    "color": norm,
                    "colorscale": "Viridis",
                    "cmin": 0,
                    "cmax": 1,
                    "line": {"width": 0},
                    "showscale": bar is not None,
                    **({"colorbar": bar} if bar else {}),
                },
                unselected={"marker": {"opacity": 1}},  # a click picks; it never fades the rest
                customdata=np.stack([[fmt_time(t) for t in r.times], [f"{v:.4f}" for v in vals]], axis=1)
                if len(vals)
                else None,
                hovertemplate=_hover(r.label, value_name),
            )
        )
    span = _span(rows, duration)
    fig.update_layout(
        height=120 + 46 * len(rows),
        margin={"l": 10, "r": 10, "t": 30, "b": 30},
        showlegend=False,
        clickmode="event+select",
        dragmode="zoom",
        hovermode="closest",
        xaxis=_time_axis(span)
        | {"title": "film time", "nticks": 12, "rangeslider": {"visible": span > 600, "thickness": 0.08}},
        yaxis={"fixedrange": True, "autorange": "reversed", "automargin": True},
    )
    for start, end in intervals or []:
        x0, x1 = _clock(np.array([start, end]))
        fig.add_vrect(x0=x0, x1=x1, fillcolor="orange", opacity=0.25, line_width=0)
    for start in [] if shots is None else np.asarray(shots)[1:, 0]:
        at = _clock(np.array([start]))[0]
        fig.add_shape(type="line", x0=at, x1=at, y0=0, y1=1, yref="paper", line={"color": "grey", "width": 1})
    for row, start, end in bands or []:
        x0, x1 = _clock(np.array([start, end]))
        fig.add_shape(
            type="rect", x0=x0, x1=x1, y0=row - 0.45, y1=row + 0.45, line={"color": "white", "width": 1}, opacity=0.6
        )
    if cursor is not None:
        at = _clock(np.array([cursor]))[0]
        fig.add_shape(type="line", x0=at, x1=at, y0=0, y1=1, yref="paper", line={"color": "red", "width": 2})
    return fig


def _scaled(vals: np.ndarray, bounds: tuple[float, float] | None = None) -> np.ndarray:
    """A row's values from 0 to 1 between ``bounds`` (default: the row's own minimum and maximum);
    a flat row is all 0."""
    lo, hi = bounds or ((float(vals.min()), float(vals.max())) if len(vals) else (0.0, 1.0))
    return (vals - lo) / (hi - lo) if hi > lo else np.zeros_like(vals)


def _span(rows: list[TimelineRow], duration: float | None) -> float:
    """Seconds the time axis spans: the film's duration, else its last frame's time."""
    return duration or max((float(r.times[-1]) for r in rows if len(r.times)), default=1.0)


def _hover(label: str, value_name: str) -> str:
    """A point's hover label: its row, then the time and score its customdata carries."""
    return (
        plain(label).replace("%", "%%") + "<br>%{customdata[0]}<br>" + value_name + " %{customdata[1]}<extra></extra>"
    )


def _time_axis(span: float) -> dict:
    """Film time as a date axis from midnight over ``span`` seconds: Plotly picks labels that suit the zoom."""
    return {
        "type": "date",
        "tickformat": "%H:%M:%S" if span >= 3600 else "%M:%S",
        "tickangle": 0,
        "hoverformat": "%H:%M:%S.%L",
        "range": list(_clock(np.array([-0.5, span + 0.5]))),
    }


STRIP_ROW = 0.3  # half the height of a strip row, in rows: the gap between rows holds the next film's name


def strip_figure(rows: list[TimelineRow], value_name: str = "cosine", duration: float | None = None) -> go.Figure:
    """The Search tab's score strip: one thin heatmap row per film (each on its own colour scale),
    its name above it across the strip's width, one colour bar above all. Each cell carries its
    time, score and frame index (``customdata``) for the hover label, the hover preview and a click."""
    bar = {  # thin, above the rows: the strip keeps its width for the film
        "title": {"text": value_name, "side": "top"},
        "orientation": "h",
        "x": 0.5,
        "xanchor": "center",
        "y": 1.02,
        "yanchor": "bottom",
        "len": 0.6,
        "thickness": 8,
        "tickvals": [0, 1],
        "ticktext": ["row min", "row max"],
    }
    traces, names = [], []  # the figure is made once from them: adding one by one costs ~10 ms a row
    for n, r in enumerate(rows):
        vals = np.asarray(r.values, float)
        norm = _scaled(vals)
        frames = np.arange(len(vals)) if r.frames is None else np.asarray(r.frames)
        # arrays, not lists: Plotly validates a list element by element, ~10 ms a query for 600 cells
        cells = np.array(
            [[fmt_time(t), f"{v:.4f}", str(int(f))] for t, v, f in zip(r.times, vals, frames, strict=True)]
        )
        traces.append(
            go.Heatmap(
                x=np.array(_clock(np.asarray(r.times, float))),
                y=[n - STRIP_ROW, n + STRIP_ROW],  # the row's edges: a band with room for the next name
                z=norm[None],
                zmin=0,
                zmax=1,
                colorscale="Viridis",
                showscale=n == 0,
                colorbar=bar if n == 0 else None,
                name=plain(r.label),
                customdata=cells[None] if len(cells) else None,
                hovertemplate=_hover(r.label, value_name),
            )
        )
        names.append(
            {
                "x": 0,
                "xref": "paper",
                "xanchor": "left",
                "y": n - STRIP_ROW,
                "yanchor": "bottom",
                "text": plain(short_label(r.label, STRIP_LABEL)),
                "showarrow": False,
                "font": {"size": 11},
            }
        )
    layout = {
        "height": 130 + 44 * len(rows),
        "margin": {"l": 10, "r": 10, "t": 70, "b": 30},
        "showlegend": False,
        "dragmode": "zoom",
        "hovermode": "closest",
        "annotations": names,
        "xaxis": _time_axis(_span(rows, duration)) | {"title": None, "nticks": 4},
        "yaxis": {
            "fixedrange": True,
            "range": [len(rows) - 0.5, -0.7],  # downwards, with room above the first row for its name
            "visible": False,
        },
    }
    return go.Figure(data=traces, layout=layout)


_MIDNIGHT = np.datetime64("2000-01-01T00:00:00", "ms")


def _clock(seconds: np.ndarray) -> list[str]:
    """Film seconds as clock times from midnight (ISO strings, millisecond precision) for a date axis."""
    stamps = _MIDNIGHT + np.round(np.asarray(seconds, float) * 1000).astype("timedelta64[ms]")
    return [str(x).replace("T", " ") for x in stamps]


def seconds_of(x: float | str) -> float:
    """A clicked point's x (a clock string on the date axis, or seconds) as film seconds."""
    if isinstance(x, (int, float)):
        return float(x)
    stamp = np.datetime64(str(x).strip().replace(" ", "T")[:23], "ms")
    return float((stamp - _MIDNIGHT) / np.timedelta64(1, "ms")) / 1000


STRIP_LABEL = 60  # a film's name above its row of the strip: the strip's width, not a tick label's


def short_label(text: str, limit: int = 28) -> str:
    """A row label that fits beside the chart (long queries are shortened, the full one is hovered)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def row_labels(labels: list[str], limit: int) -> list[str]:
    """Shortened row labels, numbered where two would read the same: rows sit on a categorical
    axis, so equal labels would draw two films or queries on one row."""
    short = [short_label(t, limit) for t in labels]
    seen: dict[str, int] = {}
    out = []
    for s in short:
        seen[s] = seen.get(s, 0) + 1
        out.append(s if short.count(s) == 1 else f"{s} ({seen[s]})")
    return out


def cost_figure(points: list[dict], metric: str, chance: float | None = None) -> go.Figure:
    """Quality per dollar: each engine's ``metric`` (with its 95 % interval) against its cost per
    film-hour (log scale; free engines sit at the left edge); chance as a dashed line."""
    fig = go.Figure()
    floor = 1e-4
    positions = ["top center", "bottom center", "middle right", "middle left"]  # neighbours' labels apart
    for n, p in enumerate(sorted(points, key=lambda p: (max(p["usd"], floor), p["value"]))):
        x = max(p["usd"], floor)
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[p["value"]],
                mode="markers+text",
                text=[p["engine"]],
                textposition=positions[n % len(positions)],
                marker={"size": 12},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [p["high"] - p["value"]],
                    "arrayminus": [p["value"] - p["low"]],
                },
                hovertemplate=f"{p['engine']}<br>${p['usd']:.4f} per film-hour<br>{metric} {p['value']:.3f}"
                + "<extra></extra>",
            )
        )
    if chance is not None:
        fig.add_hline(y=chance, line={"dash": "dash", "color": "orange"}, annotation_text="chance")
    fig.update_layout(
        height=360,
        showlegend=False,
        xaxis={
            "type": "log",
            "title": "USD per film-hour (log; free engines at the left edge)",
            "tickformat": "$.2~g",  # $0.0001, not "100µ"
            "tickvals": _log_ticks([max(p["usd"], floor) for p in points]),
        },
        yaxis={"title": metric, "range": [0, 1.05]},
        margin={"t": 30, "b": 40},
    )
    return fig


def _log_ticks(xs: list[float]) -> list[float]:
    """Few labelled ticks for a log axis over ``xs``: each power of ten, and 2 and 5 times it only
    when the span is under three decades (Plotly's own labels every digit of a narrow span, and
    "$0.0005$0.0006…" ran together)."""
    if not xs:
        return []
    lo, hi = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    hi = max(hi, lo + 1)
    steps = (1,) if hi - lo >= 3 else (1, 2, 5)
    return [m * 10.0**k for k in range(lo, hi + 1) for m in steps if m * 10.0**k <= 10.0**hi]


def _whisker(row: dict, metric: str, side: str) -> float:
    """Length of one side of a bar's 95 % interval (0 when there is none; a bound of 0.0 counts)."""
    value, bound = row.get(metric), row.get(f"{metric}_ci_{side}")
    return 0.0 if value is None or bound is None else abs(bound - value)


def metrics_figure(table: list[dict], metrics: list[str], chance: dict | None = None) -> go.Figure:
    """Grouped bars with 95 % intervals: one group per metric, one bar per engine; the chance level
    (the ``random`` engine) as a dashed line over each group, and over each bar where chance is the
    engine's own (R1@IoU: its moment lengths; ``<metric>_chance`` in its row) (evaluation view)."""
    fig = go.Figure()
    for row in table:
        values = [row.get(m) for m in metrics]
        fig.add_trace(
            go.Bar(
                name=row["engine"],
                x=metrics,
                y=values,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [_whisker(row, m, "high") for m in metrics],
                    "arrayminus": [_whisker(row, m, "low") for m in metrics],
                },
            )
        )
    dash = {"color": "orange", "dash": "dash", "width": 3}
    group, n = 0.9, max(len(table), 1)  # bargap 0.1: a group spans 0.9 of a category, a bar 0.9 / n
    for i, m in enumerate(metrics):
        if chance and chance.get(m) is not None:
            fig.add_shape(type="line", x0=i - group / 2, x1=i + group / 2, y0=chance[m], y1=chance[m], line=dash)
            continue
        for j, row in enumerate(table):
            own = row.get(f"{m}_chance")
            if own is not None:
                x0 = i - group / 2 + j * group / n
                fig.add_shape(type="line", x0=x0, x1=x0 + group / n, y0=own, y1=own, line=dash)
    fig.add_annotation(
        text="orange dashes: chance (random ranking); whiskers: 95 % CI",
        xref="paper",
        yref="paper",
        x=1,
        y=1.08,
        showarrow=False,
    )
    fig.update_layout(barmode="group", bargap=0.1, height=380, yaxis={"range": [0, 1.05]}, margin={"t": 40, "b": 30})
    return fig
