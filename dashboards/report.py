"""`edgediff report`: one study's dashboard as a single static HTML file.

The same views as the live study page: the fronts, the hypervolume curves and, for every plan on
the plots (a point, or a step of a hypervolume curve: failed and screened-out plans too), its plan
view (embedded, opened by a click), with plotly.js, the sample images and the plan files all inside
the file, so it opens offline and can be mailed or archived.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

from dashboards import views
from dashboards.render import Assets, Links, plan_fragment, study_page
from storage import Store


def report_html(store: Store, study: str) -> str:
    """The report of `study` as HTML text."""
    view = views.study_view(store, study)
    links = Links(
        study=lambda name: "#",
        plan=lambda name, h: f"#plan={h}",
        plan_json=lambda name, h: "data:application/json;base64,"
        + base64.b64encode(store.plan_json(name, h).encode()).decode(),
        samples=lambda name, h: _png_uri(store, name, h),
    )
    hashes = {p["plan_hash"] for data in view["methods"].values() for p in data["points"]}
    hashes |= {h["plan_hash"] for data in view["methods"].values() for h in data["history"]}
    if view["full"] is not None:
        hashes.add(view["full"]["plan_hash"])
    fragments = {h: plan_fragment(views.plan_view(store, study, h), links, shared_full_samples=True)
                 for h in sorted(hashes)}
    full_samples = None if view["full"] is None else _png_uri(store, study, view["full"]["plan_hash"])
    return study_page(view, assets=Assets.embedded(), links=links, fragments=fragments,
                      page_data={"static": True, "refresh_ms": 0, "full_samples": full_samples})


def write_report(store: Store, study: str, out: str | Path) -> Path:
    """Write the report of `study` to `out` (replaced atomically: never a half-written file)."""
    out = Path(out)
    html = report_html(store, study)
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
    return out


def _png_uri(store: Store, study: str, plan_hash: str) -> str | None:
    samples = store.samples(study, plan_hash)
    if samples is None:
        return None
    return "data:image/png;base64," + base64.b64encode(samples.png).decode()
