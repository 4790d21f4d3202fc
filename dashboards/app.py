"""The live dashboard: a Starlette (ASGI) app over the store, served by uvicorn.

Pages:
    /                                      the study list
    /studies/{study}                       fronts, hypervolume, the plan panel; redraws while a
                                           search writes new evaluations
    /studies/{study}/plans/{plan}          one plan's view as a page
    /studies/{study}/plans/{plan}/fragment the same view as an HTML fragment (the study page's panel)
JSON API (documented in the README):
    /api/studies                           the study list
    /api/studies/{study}                   the study view (every method's points, front,
                                           hypervolume and its history; the full model)
    /api/studies/{study}/front[?method=M]  the front (of one method), with the full model
    /api/studies/{study}/figures[?since=V] the study page's figures, or only the version V when
                                           nothing has changed (the page polls it)
    /api/studies/{study}/figures/front?macs=LO,HI&fid=LO,HI
                                           the front figure with the points inside that window
                                           (GMACs, FID), thinned afresh: what a zoom redraws
    /api/studies/{study}/plans/{plan}      one plan's view
    /api/studies/{study}/plans/{plan}/plan.json    the plan file (a download)
    /api/studies/{study}/plans/{plan}/samples.png  its sample images
`{plan}` is a plan hash or a unique prefix of at least six characters. The app only reads the
store (opening an older one upgrades its schema), and serves files only from its own `static/`
folder and plotly's own plotly.js.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from markupsafe import escape
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dashboards import views
from dashboards.guard import guard
from dashboards.render import (
    Assets,
    Links,
    index_page,
    plan_fragment,
    plan_page,
    study_figures,
    study_front_figure,
    study_page,
    summary_html,
)
from dashboards.server import DEFAULT_REFRESH_S
from storage import Store, StoreError

STATIC = "/static"


def _q(name: str) -> str:
    """A study name as one URL path segment; '.' and '..' (names stored before they were refused)
    are escaped too, or a browser would read them as folders."""
    quoted = quote(name, safe="")
    return quoted.replace(".", "%2E") if set(name) == {"."} else quoted


LINKS = Links(
    study=lambda name: f"/studies/{_q(name)}",
    plan=lambda name, h: f"/studies/{_q(name)}/plans/{h}",
    plan_json=lambda name, h: f"/api/studies/{_q(name)}/plans/{h}/plan.json",
    samples=lambda name, h: f"/api/studies/{_q(name)}/plans/{h}/samples.png",
)
ASSETS = Assets(inline=False, home="/", css_url=f"{STATIC}/dashboard.css", js_url=f"{STATIC}/dashboard.js",
                plotly_url=f"{STATIC}/plotly.min.js")


def create_app(store: Store, *, refresh_s: float = DEFAULT_REFRESH_S, allow_remote: bool = False) -> Any:
    """The dashboard over an open store (closed when the app shuts down), behind `guard`: only
    loopback Host names unless `allow_remote`, and responses of bounded size."""

    def index(request: Request) -> Response:
        return HTMLResponse(index_page(views.study_list(store), assets=ASSETS, links=LINKS,
                                       store_url=store.url, refresh_s=refresh_s))

    def study(request: Request) -> Response:
        name = request.path_params["study"]
        view = views.study_view(store, name)
        data = {"static": False, "refresh_ms": int(refresh_s * 1000),
                "figures_url": f"/api/studies/{_q(name)}/figures",
                "fragment_url": f"/studies/{_q(name)}/plans/"}
        return HTMLResponse(study_page(view, assets=ASSETS, links=LINKS, page_data=data, refresh_s=refresh_s))

    def plan(request: Request) -> Response:
        return HTMLResponse(plan_page(_plan_view(request), assets=ASSETS, links=LINKS))

    def fragment(request: Request) -> Response:
        return HTMLResponse(plan_fragment(_plan_view(request), LINKS))

    def api_studies(request: Request) -> Response:
        return JSONResponse({"studies": views.study_list(store)})

    def api_study(request: Request) -> Response:
        return JSONResponse(views.study_view(store, request.path_params["study"]))

    def api_front(request: Request) -> Response:
        name = request.path_params["study"]
        return JSONResponse(views.front_view(store, name, request.query_params.get("method")))

    def api_figures(request: Request) -> Response:
        name = request.path_params["study"]
        since = request.query_params.get("since")
        if since is not None and views.study_version(store, name) == since:
            return JSONResponse({"version": since})  # nothing new: one aggregate query, no figures
        view = views.study_view(store, name)
        return JSONResponse({"version": view["version"], **study_figures(view),
                             "summary_html": summary_html(view, LINKS)})

    def api_front_figure(request: Request) -> Response:
        name = request.path_params["study"]
        macs = _range(request, "macs")
        window = ((macs[0] * 1e9, macs[1] * 1e9), _range(request, "fid"))
        return JSONResponse({"front": study_front_figure(views.points_view(store, name, window))})

    def api_plan(request: Request) -> Response:
        return JSONResponse(_plan_view(request))

    def api_plan_json(request: Request) -> Response:
        name = request.path_params["study"]
        plan_hash, text = views.plan_json_text(store, name, request.path_params["plan"])
        return Response(text, media_type="application/json",
                        headers={"Content-Disposition": _attachment(views.download_name(name, plan_hash))})

    def api_samples(request: Request) -> Response:
        name = request.path_params["study"]
        plan_hash = views.resolve_plan(store, name, request.path_params["plan"])
        samples = store.samples(name, plan_hash)
        if samples is None:
            raise HTTPException(404, f"plan '{plan_hash[:12]}' of study '{name}' has no stored samples")
        return Response(samples.png, media_type="image/png")  # not cached: a fuller sheet may replace it

    def plotly_js(request: Request) -> Response:
        from plotly.offline import get_plotlyjs

        return Response(get_plotlyjs(), media_type="text/javascript",
                        headers={"Cache-Control": "max-age=86400"})

    def _plan_view(request: Request) -> dict[str, Any]:
        return views.plan_view(store, request.path_params["study"], request.path_params["plan"])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    routes = [
        Route("/", index),
        Route("/studies/{study}", study),
        Route("/studies/{study}/plans/{plan}", plan),
        Route("/studies/{study}/plans/{plan}/fragment", fragment),
        Route("/api/studies", api_studies),
        Route("/api/studies/{study}", api_study),
        Route("/api/studies/{study}/front", api_front),
        Route("/api/studies/{study}/figures", api_figures),
        Route("/api/studies/{study}/figures/front", api_front_figure),
        Route("/api/studies/{study}/plans/{plan}", api_plan),
        Route("/api/studies/{study}/plans/{plan}/plan.json", api_plan_json),
        Route("/api/studies/{study}/plans/{plan}/samples.png", api_samples),
        Route(f"{STATIC}/plotly.min.js", plotly_js),
        Mount(STATIC, app=StaticFiles(packages=[("dashboards", "static")]), name="static"),
    ]
    handlers = {views.NotFound: _not_found, views.UnreadablePlan: _unreadable, StoreError: _store_error,
                SQLAlchemyError: _store_error, HTTPException: _http_error, Exception: _unexpected}
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)  # type: ignore[arg-type]
    return guard(app, allow_remote=allow_remote)


# --- errors: one line, as JSON for the API and as a small page otherwise -----------------------------

def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return HTMLResponse(f"<!doctype html><title>edgediff: error</title><link rel=\"icon\" href=\"data:,\">"
                        f"<p>{escape(message)}</p><p><a href=\"/\">all studies</a></p>", status_code=status)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, str(exc))


async def _unreadable(request: Request, exc: Exception) -> Response:
    return _error(request, 422, str(exc))


async def _store_error(request: Request, exc: Exception) -> Response:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _error(request, 503, f"the store cannot be read ({first}); check the database and reload")


async def _unexpected(request: Request, exc: Exception) -> Response:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return _error(request, 500, f"{type(exc).__name__}: {first} (a bug: please report it with this line)")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = _error(request, exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})  # 405 keeps its Allow header
    return response


def _range(request: Request, name: str) -> tuple[float, float]:
    """The query parameter `name`=LOW,HIGH as two finite numbers, LOW < HIGH; else a 400."""
    text = request.query_params.get(name, "")
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise HTTPException(400, f"give {name}=LOW,HIGH (two numbers), not '{text[:40]}'") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise HTTPException(400, f"{name}={text[:40]} is not a range: give LOW,HIGH with LOW < HIGH")
    return low, high


def _attachment(filename: str) -> str:
    """A Content-Disposition for any file name: ASCII for old clients, UTF-8 (RFC 6266) for all."""
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"

