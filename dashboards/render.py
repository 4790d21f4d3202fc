"""HTML pages from the view dicts (Jinja2 templates in `templates/`), for the server and the report.

The two differ only in how a page reaches its assets and files (`Assets`, `Links`): the server
links to its own URLs, the report inlines everything (scripts, images as data URIs, plan files as
data-URI downloads) so that it is one file that opens anywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from dashboards.figures import figure_json, front_figure, hypervolume_figure, technique_figure
from dashboards.views import download_name
from storage import HV_FID_FACTOR


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _giga(value: float | None) -> str:
    return "–" if value is None else f"{value / 1e9:.3f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1e3:.1f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _sheet_style(samples: dict[str, Any]) -> str:
    """Small images (the digits are 32 px) enlarged a whole number of times, to about 64 px each."""
    scale = max(1, 64 // max(1, samples["width"]))
    columns = min(samples["columns"], samples["count"])
    return f"width: {(columns * (samples['width'] + 1) + 1) * scale}px"


_ENV = Environment(loader=PackageLoader("dashboards", "templates"), autoescape=select_autoescape(["html"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.globals.update(fmt=_fmt, giga=_giga, ms=_ms, pct=_pct, sheet_style=_sheet_style,
                    hv_factor=f"{HV_FID_FACTOR:g}")


@dataclass(frozen=True)
class Assets:
    """The stylesheet and scripts: inline text (`inline=True`, the report) or URLs (the server)."""

    inline: bool
    home: str
    css: str = ""
    js: str = ""
    plotly: str = ""
    css_url: str = ""
    js_url: str = ""
    plotly_url: str = ""

    @classmethod
    def embedded(cls, home: str = "#") -> Assets:
        """Everything inlined, plotly.js included (about 4.8 MB): a page with no outside requests."""
        from plotly.offline import get_plotlyjs

        static = resources.files("dashboards") / "static"
        return cls(inline=True, home=home, css=(static / "dashboard.css").read_text(),
                   js=(static / "dashboard.js").read_text(), plotly=get_plotlyjs())


@dataclass(frozen=True)
class Links:
    """Where a page points: `study(name)`, `plan(study, hash)` (a page or an anchor),
    `plan_json(study, hash)` (the plan file), `samples(study, hash)` (the sample sheet or None)."""

    study: Callable[[str], str]
    plan: Callable[[str, str], str]
    plan_json: Callable[[str, str], str]
    samples: Callable[[str, str], str | None]


def script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no `</script>`, no HTML comment openers)."""
    text = value if isinstance(value, str) else json.dumps(value, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def index_page(studies: list[dict[str, Any]], *, assets: Assets, links: Links, store_url: str,
               refresh_s: float) -> str:
    return _ENV.get_template("index.html").render(studies=studies, assets=assets, study_url=links.study,
                                                  store_url=store_url, refresh_s=refresh_s)


def study_figures(view: dict[str, Any]) -> dict[str, Any]:
    """The study page's two figures as Plotly JSON objects."""
    return {"front": study_front_figure(view),
            "hypervolume": json.loads(figure_json(hypervolume_figure(view)))}


def study_front_figure(view: dict[str, Any]) -> dict[str, Any]:
    """The front figure of a study view (or of `views.points_view`) as a Plotly JSON object."""
    return json.loads(figure_json(front_figure(view)))


def summary_html(view: dict[str, Any], links: Links) -> str:
    """The table of methods (evaluations, front size, hypervolume, cheapest front plan)."""
    name = view["study"]["name"]
    return _ENV.get_template("summary.html").render(view=view, plan_url=lambda h: links.plan(name, h))


def study_page(view: dict[str, Any], *, assets: Assets, links: Links, page_data: dict[str, Any],
               fragments: dict[str, str] | None = None, refresh_s: float = 0.0) -> str:
    """The study page: its figures and summary; `fragments` (hash -> plan HTML) are embedded for
    the report, the server fetches them when a point is clicked."""
    name = view["study"]["name"]
    data = {**study_figures(view), "version": view["version"], **page_data}
    return _ENV.get_template("study.html").render(
        view=view, assets=assets, page_data=script_json(data), fragments=fragments or {},
        plan_url=lambda h: links.plan(name, h), live=refresh_s > 0, refresh_s=refresh_s,
        note=page_data.get("missing_note"))


SHARED = "shared"  # the full model's samples: one copy in the page data, set by the page's script


def plan_fragment(plan: dict[str, Any], links: Links, *, shared_full_samples: bool = False) -> str:
    """One plan's view: numbers, summary, technique map, samples beside the full model's (with
    `shared_full_samples`, an image the page's script fills from its one copy, as the report does
    so that N plans do not carry N copies)."""
    study, plan_hash = plan["study"], plan["plan_hash"]
    full_hash = plan["full_plan_hash"]
    full_samples = None
    if plan["full_samples"] and full_hash:
        full_samples = SHARED if shared_full_samples else links.samples(study, full_hash)
    urls = {
        "plan_json": links.plan_json(study, plan_hash),
        "samples": links.samples(study, plan_hash) if plan["samples"] else None,
        "full_samples": full_samples,
    }
    return _ENV.get_template("plan.html").render(
        plan=plan, links=urls, download_name=download_name(study, plan_hash),
        technique_json=script_json(figure_json(technique_figure(plan))))


def plan_page(plan: dict[str, Any], *, assets: Assets, links: Links) -> str:
    """A plan's view as a page of its own."""
    return _ENV.get_template("plan_page.html").render(
        plan=plan, assets=assets, study_url=links.study, fragment=plan_fragment(plan, links),
        page_data=script_json({"static": True}))
