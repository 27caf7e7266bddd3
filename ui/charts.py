"""Plotly figures for the dashboard. Pure functions of data: no Streamlit here, so they test alone.

The timeline is drawn with square scatter markers rather than ``go.Heatmap`` because Streamlit
returns no selection for heatmap traces (streamlit issues 8760/8933); markers give the same
picture and a click on one reports its time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from clip_search.timecode import fmt_time

GL_POINTS = 20_000  # beyond this, WebGL markers keep zoom and hover fluid


@dataclass
class TimelineRow:
    """One row of the timeline: a label (query or engine) and a value per frame time."""

    label: str
    times: np.ndarray
    values: np.ndarray


def timeline_figure(
    rows: list[TimelineRow],
    value_name: str = "cosine",
    duration: float | None = None,
    intervals: list[tuple[float, float]] | None = None,
) -> go.Figure:
    """x = film time, one row per query/engine, colour = score; ``intervals`` shades
    ground-truth stretches (evaluation view)."""
    fig = go.Figure()
    n_points = sum(len(r.times) for r in rows)
    trace = go.Scattergl if n_points > GL_POINTS else go.Scatter
    longest = max((len(r.times) for r in rows), default=1)
    size = float(np.clip(1400 / max(longest, 1), 4, 22))
    for r in rows:
        vals = np.asarray(r.values, float)
        # per-row colour scale: each query has its own score range, so normalise within the row
        lo, hi = (float(vals.min()), float(vals.max())) if len(vals) else (0.0, 1.0)
        norm = (vals - lo) / (hi - lo) if hi > lo else np.zeros_like(vals)
        fig.add_trace(
            trace(
                x=np.asarray(r.times, float),
                y=[r.label] * len(vals),
                mode="markers",
                name=r.label,
                marker={
                    "symbol": "square",
                    "size": size,
                    "color": norm,
                    "colorscale": "Viridis",
                    "cmin": 0,
                    "cmax": 1,
                    "line": {"width": 0},
                },
                customdata=np.stack([[fmt_time(t) for t in r.times], [f"{v:.4f}" for v in vals]], axis=1)
                if len(vals)
                else None,
                hovertemplate="%{y}<br>%{customdata[0]}<br>" + value_name + " %{customdata[1]}<extra></extra>",
            )
        )
    span = duration or max((float(r.times[-1]) for r in rows if len(r.times)), default=1.0)
    ticks = _time_ticks(span)
    fig.update_layout(
        height=120 + 46 * len(rows),
        margin={"l": 10, "r": 10, "t": 30, "b": 30},
        showlegend=False,
        clickmode="event+select",
        dragmode="zoom",
        hovermode="closest",
        xaxis={
            "title": "film time",
            "tickvals": ticks,
            "ticktext": [fmt_time(t)[:-2] for t in ticks],
            "range": [-0.5, span + 0.5],
            "rangeslider": {"visible": span > 600, "thickness": 0.08},
        },
        yaxis={"fixedrange": True, "autorange": "reversed", "automargin": True},
    )
    for start, end in intervals or []:
        fig.add_vrect(x0=start, x1=end, fillcolor="orange", opacity=0.25, line_width=0)
    return fig


def _time_ticks(span: float) -> list[float]:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800):
        if span / step <= 12:
            return [float(t) for t in np.arange(0, span + 1e-9, step)]
    return [float(t) for t in np.arange(0, span + 1e-9, 3600)]


def metrics_figure(table: list[dict], metrics: list[str]) -> go.Figure:
    """Grouped bars: one group per metric, one bar per engine (evaluation view)."""
    fig = go.Figure()
    for row in table:
        fig.add_trace(go.Bar(name=row["engine"], x=metrics, y=[row.get(m) for m in metrics]))
    fig.update_layout(barmode="group", height=360, yaxis={"range": [0, 1]}, margin={"t": 30, "b": 30})
    return fig
