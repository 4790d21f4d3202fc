"""The dashboard's charts as Plotly figures, built from the view dicts of `dashboards.views`.

Every figure is handed to the page as Plotly JSON (`figure_json`) and drawn by plotly.js; points
carry their plan hash in `customdata`, so a click on any of them opens that plan.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative

from search.methods import method_rank, search_methods

GIGA = 1e9
# by `search.methods.method_rank`: the baselines blue, Optuna red, other registered methods next
_RANK_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
_OTHER_COLOURS = [c for c in qualitative.D3 if c not in _RANK_COLOURS]
_TECHNIQUE_COLOURS = {
    "full": "#4c4c4c", "full+asc": "#8c6d31", "asc": "#bd9e39", "wars": "#3182bd",
    "wars+asc": "#6baed6", "ast": "#31a354", "partial": "#9ecae1",
    # diffusers' caches (the block x step map)
    "compute": "#4c4c4c", "cached": "#31a354", "forecast": "#74c476", "broadcast": "#3182bd",
    "run-time": "#fdae6b",
}
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=50, b=40), height=460,
               legend=dict(orientation="h", yanchor="top", y=-0.15, x=0))
_POINT_HOVER = ("<b>%{text}</b><br>%{x:.3f} GMACs/img (%{customdata[1]})<br>FID %{y:.2f} "
                "(%{customdata[2]})<br>plan %{customdata[3]}<extra>%{fullData.name}</extra>")


def method_colour(method: str, methods: list[str]) -> str:
    """A registered method's colour everywhere (the baselines blue, Optuna red); other methods take
    the next colours in turn."""
    registered = {m.name for m in search_methods()}
    if method in registered:
        return _RANK_COLOURS[method_rank(method) % len(_RANK_COLOURS)]
    others = [m for m in methods if m not in registered]
    return _OTHER_COLOURS[others.index(method) % len(_OTHER_COLOURS)] if method in others else "#7f7f7f"


def front_figure(view: dict[str, Any]) -> go.Figure:
    """MACs vs FID: every evaluated plan of each method as a faint point, each method's Pareto
    front as a staircase, the full model as a star."""
    fig = go.Figure()
    methods = list(view["methods"])
    for method, data in view["methods"].items():
        colour = method_colour(method, methods)
        shown = len(data["points"])
        total = data.get("points_total", shown)
        more = "" if shown == total else f" ({shown} of {total}; zoom for more)"
        name = f"{method}: all evaluated{more}"
        fig.add_trace(_points_trace(data["points"], name, colour,
                                    dict(size=7, opacity=0.3), legendgroup=method))
        fig.add_trace(_points_trace(data["front"], f"{method}: front ({len(data['front'])})", colour,
                                    dict(size=11, line=dict(width=1, color="white")),
                                    mode="lines+markers", line=dict(shape="hv", width=2),
                                    legendgroup=method))
    if view["full"] is not None:
        fig.add_trace(_points_trace([view["full"]], "full model", "#111111",
                                    dict(size=18, symbol="star")))
    fids = view.get("fid_range") or [p["fid"] for data in view["methods"].values()
                                      for p in data["points"] if p["fid"]]  # every plan's, thinned or not
    if fids and max(fids) > 4 * min(fids):  # broken plans far above the front: a log axis keeps both
        ticks = log_ticks(min(fids), max(fids))
        fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    fig.update_layout(title="Pareto front: MACs per image vs FID (lower left is better)",
                      xaxis_title="GMACs per image", yaxis_title="FID", clickmode="event",
                      hovermode="closest", **_LAYOUT)
    return fig


def log_ticks(low: float, high: float) -> list[float]:
    """1-2-3-5-7 ticks from just below `low` to just above `high`, so a log axis reads in plain
    numbers near the front too (Plotly's own labels its minor ticks with a bare leading digit)."""
    decade = math.floor(math.log10(low))
    ticks = []
    while not ticks or ticks[-1] < high:
        ticks += [m * 10.0**decade for m in (1, 2, 3, 5, 7)]
        decade += 1
    first = max(i for i, t in enumerate(ticks) if t <= low)
    last = min(i for i, t in enumerate(ticks) if t >= high)
    return ticks[first:last + 1]


def hypervolume_figure(view: dict[str, Any]) -> go.Figure:
    """Each method's front hypervolume after each of its evaluations."""
    fig = go.Figure()
    methods = list(view["methods"])
    for method, data in view["methods"].items():
        history = data["history"]
        fig.add_trace(go.Scatter(
            x=np.array([h["evaluations"] for h in history], dtype=float),
            y=np.array([h["hypervolume"] for h in history], dtype=float),
            customdata=np.array([[h["plan_hash"], h["status"], h["plan_hash"][:12]] for h in history],
                                dtype=object).reshape(-1, 3), name=method,
            mode="lines+markers", line=dict(shape="hv", color=method_colour(method, methods)),
            hovertemplate="evaluation %{x}: HV %{y:.4f}<br>%{customdata[1]} plan "
                          "%{customdata[2]}<extra>%{fullData.name}</extra>",
        ))
    reference = view["reference_point"]
    note = "" if reference is None else f" (reference: full MACs, {reference['fid']:.2f} FID)"
    fig.update_layout(title=f"Hypervolume against evaluations{note}", xaxis_title="evaluations",
                      yaxis_title="hypervolume (full-model units)", hovermode="closest", **_LAYOUT)
    fig.update_xaxes(rangemode="tozero", dtick=_tick_step(view))
    fig.update_yaxes(rangemode="tozero")
    return fig


def technique_figure(plan: dict[str, Any]) -> go.Figure:
    """The plan's technique per (layer, step) as a heatmap, a cache's block x step map, or its
    DeepCache schedule as a one-row timeline."""
    techniques = plan["techniques"]
    if techniques["kind"] == "attention":
        rows = techniques["methods"]
        title = (f"DiTFastAttn methods per self-attention layer and step "
                 f"({techniques['layers']} layers × {techniques['steps']} steps)")
        y_title, y = "layer", list(range(len(rows)))
    elif techniques["kind"] == "blocks":
        rows, y_title, y = techniques["rows"], "blocks", techniques["labels"]
        named = " + ".join(techniques.get("titles", [])) or "cache"
        title = f"{named} per block and step ({techniques['steps']} steps)"
        if any("broadcast" in row or "forecast" in row for row in rows) and any(
                t in named for t in ("Pyramid", "FasterCache")):
            title += "; timestep ranges drawn for evenly spaced timesteps"
    else:
        rows = [techniques["row"]]
        branch = techniques["branch"]
        named = " + ".join(t for t in techniques.get("titles", []) if t != "depth-skip") or "step"
        title = (f"{named} schedule: " + (f"branch {branch}, " if branch is not None else "")
                 + f"{rows[0].count('full')} full of {techniques['steps']} steps")
        if techniques["depth_skip"]:
            title += f"; {techniques['depth_skip']} deepest level(s) skipped"
        y_title, y = "", ["U-Net"]
    legend = [name for name in techniques["legend"] if any(name in row for row in rows)] or ["full"]
    index = {name: k for k, name in enumerate(legend)}
    fig = go.Figure(go.Heatmap(
        z=[[index[m] for m in row] for row in rows], x=list(range(techniques["steps"])), y=y,
        text=rows, zmin=-0.5, zmax=len(legend) - 0.5, colorscale=_stepped(legend), xgap=1, ygap=1,
        colorbar=dict(tickvals=list(range(len(legend))), ticktext=legend, title="technique"),
        hovertemplate="step %{x}, " + ("layer %{y}" if y_title == "layer" else "%{y}")
                      + ": %{text}<extra></extra>",
    ))
    height = 140 + 22 * len(rows) if y_title else 220
    fig.update_layout(title=title, xaxis_title="denoising step", yaxis_title=y_title,
                      **{**_LAYOUT, "height": max(height, 220)})
    if y_title:
        fig.update_yaxes(autorange="reversed", **({"dtick": 1} if y_title == "layer" else {}))
    return fig


def figure_json(fig: go.Figure) -> str:
    """The figure as Plotly JSON text."""
    return pio.to_json(fig, validate=False, engine="json")


# --- pieces ------------------------------------------------------------------------------------------

def _points_trace(points: list[dict[str, Any]], name: str, colour: str, marker: dict[str, Any],
                  **kw: Any) -> go.Scatter:
    # numpy arrays: Plotly checks a list element by element (seconds for 100,000 points), and
    # sends numeric arrays as typed binary data
    return go.Scatter(
        x=np.array([p["macs"] / GIGA for p in points], dtype=float),
        y=np.array([math.nan if p["fid"] is None else p["fid"] for p in points], dtype=float), name=name,
        text=np.array([", ".join(p["labels"]) or ", ".join(p["methods"]) for p in points], dtype=object),
        customdata=np.array([[p["plan_hash"], _times(p["macs_ratio"]), _signed(p["fid_delta"]),
                              p["plan_hash"][:12]] for p in points], dtype=object).reshape(-1, 4),
        mode=kw.pop("mode", "markers"), marker=dict(color=colour, **marker), hovertemplate=_POINT_HOVER,
        **kw,
    )


def _stepped(names: list[str]) -> list[list[Any]]:
    """A colour scale with one flat band per category (z = 0 .. n-1)."""
    n = len(names)
    scale = []
    for k, name in enumerate(names):
        colour = _TECHNIQUE_COLOURS.get(name, "#999999")
        scale += [[k / n, colour], [(k + 1) / n, colour]]
    return scale


def _tick_step(view: dict[str, Any]) -> int | None:
    most = max((len(d["history"]) for d in view["methods"].values()), default=0)
    return 1 if most <= 12 else None


def _times(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}× fewer MACs than full"


def _signed(delta: float | None) -> str:
    return "" if delta is None else f"{delta:+.2f} vs full"
