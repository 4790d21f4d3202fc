"""`edgediff report`: one study's dashboard as a single static HTML file.

The same views as the live study page: the fronts, the hypervolume curves and, for every plan on
the plots (a point, or a step of a hypervolume curve: failed and screened-out plans too), its plan
view (embedded, opened by a click), with plotly.js, the sample images and the plan files all inside
the file, so it opens offline and can be mailed or archived. A plan view weighs 10-20 KB with its
images, so a study of more than `max_plans` plans embeds only the views of the plans on a front
(overall or of one method) and the full model's; its other points still show their numbers on hover.
"""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards import views
from dashboards.render import Assets, Links, plan_fragment, study_page
from dashboards.server import DEFAULT_MAX_PLANS
from storage import Store


@dataclass(frozen=True)
class Report:
    """A written report: its `path`, the study's `plans` on the plots and how many of their views
    are `embedded`."""

    path: Path
    plans: int
    embedded: int


def embedded_plans(view: dict[str, Any], max_plans: int = DEFAULT_MAX_PLANS) -> tuple[set[str], set[str]]:
    """(every plan on the study page's plots, the plans whose views a report embeds): all of them
    up to `max_plans`, else the fronts' plans (overall and per method) and the full model's."""
    methods = view["methods"].values()
    hashes = {p["plan_hash"] for data in methods for p in data["points"]}
    hashes |= {h["plan_hash"] for data in methods for h in data["history"]}
    full = set() if view["full"] is None else {view["full"]["plan_hash"]}
    if len(hashes | full) <= max_plans:
        return hashes | full, hashes | full
    fronts = {p["plan_hash"] for p in view["front"]} | {p["plan_hash"] for d in methods for p in d["front"]}
    return hashes | full, fronts | full


def report_html(store: Store, study: str, max_plans: int = DEFAULT_MAX_PLANS) -> tuple[str, int, int]:
    """The report of `study` as HTML text, with the number of plans on its plots and of the views
    embedded (see `embedded_plans`)."""
    view = views.study_view(store, study)
    links = Links(
        study=lambda name: "#",
        plan=lambda name, h: f"#plan={h}",
        plan_json=lambda name, h: "data:application/json;base64,"
        + base64.b64encode(store.plan_json(name, h).encode()).decode(),
        samples=lambda name, h: _png_uri(store, name, h),
    )
    plotted, embedded = embedded_plans(view, max_plans)
    fragments = {}
    for h in sorted(embedded):
        try:
            fragments[h] = plan_fragment(views.plan_view(store, study, h), links, shared_full_samples=True)
        except views.UnreadablePlan:  # a plan written outside edgediff: the report goes on without it
            continue
    full_samples = None if view["full"] is None else _png_uri(store, study, view["full"]["plan_hash"])
    missing = None
    if len(embedded) < len(plotted):
        missing = (f"This report embeds the views of the {len(embedded)} plans on a front (of "
                   f"{len(plotted)}): `edgediff report --max-plans {len(plotted)}` embeds them all, "
                   "and the live dashboard (`edgediff dashboard`) opens any plan.")
    html = study_page(view, assets=Assets.embedded(), links=links, fragments=fragments,
                      page_data={"static": True, "refresh_ms": 0, "full_samples": full_samples,
                                 "missing_note": missing})
    return html, len(plotted), len(embedded)


def write_report(store: Store, study: str, out: str | Path, *, max_plans: int = DEFAULT_MAX_PLANS) -> Report:
    """Write the report of `study` to `out` (replaced atomically: never a half-written file)."""
    out = Path(out)
    html, plans, embedded = report_html(store, study, max_plans)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, not mkstemp's owner-only one
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Report(out, plans, embedded)


def _png_uri(store: Store, study: str, plan_hash: str) -> str | None:
    samples = store.samples(study, plan_hash)
    if samples is None:
        return None
    return "data:image/png;base64," + base64.b64encode(samples.png).decode()
